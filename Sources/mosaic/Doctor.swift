import ArgumentParser
import Artifacts
import Collective
import Foundation
import Linalg

/// `mosaic doctor`: checks that a node (or a set of nodes) can run Mosaic jobs.
struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check MPI, BLAS and HDF5 on every rank and print a verdict.",
        discussion: """
            Run it under mpirun on the nodes you want to check, e.g. \
            `Cluster/mpirun-local.sh -np 2 .build/release/mosaic doctor`.

            It reports the world size and hosts, checks an allreduce checksum, compares a BLAS \
            gemm with a naive product, and writes and reads back an HDF5 file on every rank. \
            Without mpirun it initialises MPI as a singleton. Exits 0 when every check passes \
            on every rank, 1 otherwise.
            """)

    @Option(help: "Folder for the HDF5 round-trip files (each rank writes its own).")
    var scratch: String = NSTemporaryDirectory()

    func run() throws {
        Communicator.runJob(forceMPI: true) { comm in
            var failures: [String] = []
            func check(_ name: String, _ body: () throws -> String) {
                do {
                    let detail = try body()
                    comm.log("  \(name.padding(toLength: 10, withPad: " ", startingAt: 0)) ok    \(detail)")
                } catch {
                    failures.append("\(name): \(error)")
                    comm.log("  \(name.padding(toLength: 10, withPad: " ", startingAt: 0)) FAIL  \(error)")
                }
            }
            let hosts = try gatherHosts(comm)
            comm.log("mosaic doctor: \(comm.size) rank(s) on \(Set(hosts).count) host(s): \(hostSummary(hosts))")
            comm.log("  OpenBLAS threads per rank: \(BLAS.threads)")
            check("allreduce") { try allreduceCheck(comm) }
            check("blas") { try blasCheck() }
            check("hdf5") { try hdf5Check(rank: comm.rank) }
            // Every rank must agree on the verdict.
            let failedRanks = try comm.allgather([Int32(failures.isEmpty ? 0 : 1)])
            let bad = failedRanks.enumerated().filter { $0.element != 0 }.map(\.offset)
            if !failures.isEmpty && !comm.isRoot {
                FileHandle.standardError.write(Data("rank \(comm.rank): \(failures.joined(separator: "; "))\n".utf8))
            }
            if bad.isEmpty {
                comm.log("VERDICT: OK — MPI, BLAS and HDF5 work on all \(comm.size) rank(s)")
            } else {
                comm.log(
                    "VERDICT: FAIL on rank(s) \(bad.map(String.init).joined(separator: ", ")) — see the lines above")
                throw ExitCode.failure
            }
        }
    }

    func gatherHosts(_ comm: Communicator) throws -> [String] {
        let (bytes, counts) = try comm.allgatherv(Array(comm.processorName().utf8))
        var out: [String] = []
        var offset = 0
        for c in counts {
            out.append(String(decoding: bytes[offset..<offset + c], as: UTF8.self))
            offset += c
        }
        return out
    }

    func hostSummary(_ hosts: [String]) -> String {
        var counts: [String: Int] = [:]
        for h in hosts { counts[h, default: 0] += 1 }
        return counts.keys.sorted().map { "\($0) ×\(counts[$0]!)" }.joined(separator: ", ")
    }

    /// Every rank adds (rank + 1) · (i mod 97); the sum is p(p+1)/2 · (i mod 97), exactly.
    func allreduceCheck(_ comm: Communicator) throws -> String {
        let n = 1 << 20
        var values = (0..<n).map { Double(comm.rank + 1) * Double($0 % 97) }
        try comm.allreduce(&values)
        let factor = Double(comm.size * (comm.size + 1) / 2)
        for i in 0..<n where values[i] != factor * Double(i % 97) {
            throw CollectiveError(
                call: "allreduce check", message: "element \(i) is \(values[i]), expected \(factor * Double(i % 97))")
        }
        let checksum = values.reduce(0, +)
        return "sum of \(n) doubles over \(comm.size) rank(s) = \(Int64(checksum)) (exact)"
    }

    /// A gemm through BLAS against a naive triple loop on random data.
    func blasCheck() throws -> String {
        var rng = RandomStream(seed: 7)
        let (m, n, k) = (67, 45, 129)
        let a = Matrix(rows: m, cols: k, data: (0..<m * k).map { _ in rng.uniformFloat() - 0.5 })
        let b = Matrix(rows: k, cols: n, data: (0..<k * n).map { _ in rng.uniformFloat() - 0.5 })
        let c = Matrix.gemm(a, b)
        var maxError: Float = 0
        for i in 0..<m {
            for j in 0..<n {
                var s: Double = 0
                for p in 0..<k { s += Double(a[i, p]) * Double(b[p, j]) }
                maxError = max(maxError, abs(Float(s) - c[i, j]))
            }
        }
        guard maxError < 1e-4 else {
            throw CollectiveError(call: "cblas_sgemm check", message: "max error \(maxError) against the naive product")
        }
        return String(format: "sgemm %dx%dx%d matches the naive product (max error %.1e)", m, n, k, maxError)
    }

    /// Writes a dataset with an attribute and reads a hyperslab back.
    func hdf5Check(rank: Int) throws -> String {
        let path = (scratch as NSString).appendingPathComponent("mosaic-doctor-\(getpid())-\(rank).h5")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let values = (0..<1000 * 8).map { Float($0) * 0.5 }
        do {
            let file = try H5File(path: path, mode: .create)
            let ds = try file.root.write("x", values, shape: [1000, 8], compression: 4)
            try ds.setAttribute("producer", "mosaic doctor")
        }
        let file = try H5File(path: path, mode: .read)
        let ds = try file.root.dataset("x", of: Float.self, shape: [1000, 8])
        let rows = try ds.readRows(500..<510, as: Float.self)
        guard rows == Array(values[4000..<4080]), try ds.stringAttribute("producer") == "mosaic doctor" else {
            throw ArtifactError(file: path, object: "/x", message: "read back different values")
        }
        return "wrote and read back a compressed 1000x8 dataset and a hyperslab"
    }
}

import Artifacts
import Collective
import Foundation
import Index
import Testing
import _TestSupport

/// `mosaic index build/search/add/remove` under mpirun with 1, 2 and 4 ranks must give the same
/// centroids (up to reduction order), the same lists and the same search results.
@Suite("Index under mpirun", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct IndexMultiRankTests {
    struct Outcome {
        var centroids: [Float], pqCentroids: [Float], offsets: [Int64], ids: [Int64], codes: [UInt8]
        var labels: [Int64], distances: [Float], searchLine: String, afterUpdate: [Int64]
        /// Without re-ranking: `search` (every query on every shard) and `searchOwn` (each rank
        /// its block of queries, routed to the shards owning their probed lists).
        var plainLabels: [Int64] = [], ownLabels: [Int64] = []
    }

    static let d = 16
    static let n = 3000

    /// Writes the input (vectors with scrambled ids, queries, extra vectors) once per run.
    static func input(_ dir: URL) throws -> String {
        let path = dir.appendingPathComponent("input.h5").path
        let x = clustered(n: n, d: d, clusters: 30, noise: 0.5)
        let f = try H5File(path: path, mode: .create)
        try f.root.write("vectors", x, shape: [n, d])
        try f.root.write("ids", (0..<Int64(n)).map { ($0 * 7919) % Int64(n) + 100_000 }, shape: [n])
        try f.root.write("queries", clustered(n: 64, d: d, clusters: 30, noise: 0.5, seed: 31), shape: [64, d])
        let fresh = clustered(n: 200, d: d, clusters: 30, noise: 0.5, seed: 55)
        let g = try H5File(path: dir.appendingPathComponent("fresh.h5").path, mode: .create)
        try g.root.write("vectors", fresh, shape: [200, d])
        try g.root.write("ids", (0..<Int64(200)).map { $0 + 900_000 }, shape: [200])
        return path
    }

    /// Initialises this process's own one-rank MPI world before any child is launched: the
    /// singleton's first initialisation forks an `orted`, which would otherwise inherit the pipes
    /// of a concurrently running `mpirun` child and keep them open (the reader never sees EOF).
    static func initialiseWorldFirst() throws { _ = try Communicator.world() }

    static func run(_ ranks: Int, _ args: [String]) throws -> MPIRun.Result {
        try initialiseWorldFirst()
        let r = try MPIRun.mosaic(ranks: ranks, args)
        #expect(r.status == 0, "mosaic \(args.joined(separator: " ")) on \(ranks) ranks: \(r.output)")
        return r
    }

    static func outcome(ranks: Int, dir: URL, input: String) throws -> Outcome {
        let index = dir.appendingPathComponent("ivfpq-\(ranks).h5").path
        let results = dir.appendingPathComponent("results-\(ranks).h5").path
        let build = try run(
            ranks,
            [
                "index", "build", "--input", input, "--output", index, "--nlist", "24", "--pq-m", "4",
                "--keep-vectors", "--initialization", "kmeans++", "--iterations", "12", "--seed", "5", "--add-batch",
                "700",
            ])
        #expect(build.stdout.contains("INDEX BUILT ntotal=\(n) d=\(d) nlist=24 m=4 ranks=\(ranks)"), "\(build.output)")
        let search = try run(
            ranks,
            [
                "index", "search", "--index", index, "--queries", input, "--k", "10", "--nprobe", "6",
                "--refine-factor", "4", "--output", results,
            ])
        let line = search.stdout.split(separator: "\n").first { $0.hasPrefix("SEARCH") }.map(String.init) ?? ""
        var plainOwn: [[Int64]] = []
        for (name, extra) in [("plain", [String]()), ("own", ["--own"])] {
            let file = dir.appendingPathComponent("\(name)-\(ranks).h5").path
            _ = try run(
                ranks,
                [
                    "index", "search", "--index", index, "--queries", input, "--k", "10", "--nprobe", "6", "--output",
                    file,
                ]
                    + extra)
            plainOwn.append(try H5File(path: file, mode: .read).root.read("labels", as: Int64.self))
        }
        let f = try H5File(path: index, mode: .read)
        let r = try H5File(path: results, mode: .read)
        // Update path: add fresh vectors, remove some ids, search again.
        let updated = dir.appendingPathComponent("updated-\(ranks).h5").path
        let add = try run(
            ranks,
            [
                "index", "add", "--index", index, "--input", dir.appendingPathComponent("fresh.h5").path, "--output",
                updated, "--add-batch", "70",
            ])
        #expect(add.stdout.contains("INDEX ADDED added=200 ntotal=\(n + 200)"), "\(add.output)")
        let remove = try run(
            ranks, ["index", "remove", "--index", updated, "--ids", "900000", "900001", "100000", "42"])
        #expect(remove.stdout.contains("INDEX REMOVED removed=3 ntotal=\(n + 197)"), "\(remove.output)")
        let after = dir.appendingPathComponent("after-\(ranks).h5").path
        _ = try run(
            ranks,
            [
                "index", "search", "--index", updated, "--queries", input, "--k", "10", "--nprobe", "24", "--output",
                after,
            ])
        return Outcome(
            centroids: try f.root.read("centroids", as: Float.self),
            pqCentroids: try f.root.read("pq_centroids", as: Float.self),
            offsets: try f.root.read("list_offsets", as: Int64.self), ids: try f.root.read("ids", as: Int64.self),
            codes: try f.root.read("codes", as: UInt8.self), labels: try r.root.read("labels", as: Int64.self),
            distances: try r.root.read("distances", as: Float.self), searchLine: line,
            afterUpdate: try H5File(path: after, mode: .read).root.read("labels", as: Int64.self),
            plainLabels: plainOwn[0], ownLabels: plainOwn[1])
    }

    @Test("1, 2 and 4 ranks: same k-means centroids (k-means++ init), same lists, same search results, same updates")
    func sameResultsWhateverTheRankCount() throws {
        let dir = try MPIRun.temporaryDirectory("index-ranks")
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = try Self.input(dir)
        let one = try Self.outcome(ranks: 1, dir: dir, input: input)
        #expect(one.labels.filter { $0 >= 0 }.count == 64 * 10)
        #expect(one.plainLabels.filter { $0 >= 0 }.count == 64 * 10)
        #expect(one.ownLabels == one.plainLabels, "searchOwn differs from search on 1 rank")
        #expect(one.afterUpdate.contains { $0 >= 900_002 }, "fresh vectors are found after `index add`")
        #expect(!one.afterUpdate.contains(900_000) && !one.afterUpdate.contains(100_000), "removed ids are gone")
        for ranks in [2, 4] {
            let other = try Self.outcome(ranks: ranks, dir: dir, input: input)
            let maxDiff = zip(one.centroids, other.centroids).map { abs($0 - $1) }.max() ?? .infinity
            #expect(maxDiff < 1e-4, "coarse centroids differ by \(maxDiff) between 1 and \(ranks) ranks")
            let pqDiff = zip(one.pqCentroids, other.pqCentroids).map { abs($0 - $1) }.max() ?? .infinity
            #expect(pqDiff < 1e-4, "PQ centroids differ by \(pqDiff) between 1 and \(ranks) ranks")
            #expect(one.offsets == other.offsets)
            #expect(one.ids == other.ids)
            #expect(one.codes == other.codes)
            #expect(one.labels == other.labels)
            let distDiff = zip(one.distances, other.distances).map { abs($0 - $1) }.max() ?? .infinity
            #expect(distDiff < 1e-3)
            #expect(one.afterUpdate == other.afterUpdate)
            #expect(other.plainLabels == one.plainLabels, "search on \(ranks) ranks")
            #expect(other.ownLabels == one.plainLabels, "searchOwn on \(ranks) ranks differs from search on 1")
            let digest = { (line: String) in line.split(separator: " ").last.map(String.init) ?? "" }
            #expect(digest(one.searchLine) == digest(other.searchLine), "\(one.searchLine) vs \(other.searchLine)")
        }
    }

    @Test("bad input files give a clear error naming the file and dataset")
    func badInput() throws {
        try Self.initialiseWorldFirst()
        let dir = try MPIRun.temporaryDirectory("index-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("bad.h5").path
        do {
            let f = try H5File(path: path, mode: .create)
            try f.root.write("vectors", [Int64](repeating: 1, count: 12), shape: [3, 4])
        }
        let r = try MPIRun.mosaic(
            ranks: 2, ["index", "build", "--input", path, "--output", dir.appendingPathComponent("o.h5").path])
        #expect(r.status != 0)
        #expect(
            r.stderr.contains(path) && r.stderr.contains("/vectors") && r.stderr.contains("expected float32"),
            "\(r.output)")
        // Queries of another dimension than the index's.
        let good = dir.appendingPathComponent("good.h5").path
        do {
            let f = try H5File(path: good, mode: .create)
            try f.root.write("vectors", clustered(n: 300, d: 8, clusters: 3), shape: [300, 8])
            try f.root.write("queries", clustered(n: 5, d: 6, clusters: 3), shape: [5, 6])
        }
        let index = dir.appendingPathComponent("i.h5").path
        let build = try MPIRun.mosaic(ranks: 2, ["index", "build", "--input", good, "--output", index, "--nlist", "4"])
        #expect(build.status == 0, "\(build.output)")
        let search = try MPIRun.mosaic(ranks: 2, ["index", "search", "--index", index, "--queries", good])
        #expect(search.status != 0)
        #expect(search.stderr.contains("/queries: expected float32 (*, 8), found float32 (5, 6)"), "\(search.output)")
        let help = try MPIRun.mosaicSingleton(["index", "build", "--help"])
        for option in [
            "--input", "--nlist", "--pq-m", "--metric", "--keep-vectors", "--initialization", "--iterations",
        ] {
            #expect(help.stdout.contains(option), "--help lacks \(option)")
        }
    }
}

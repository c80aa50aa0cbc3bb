import ArgumentParser
import CBLAS
import CMPI
import Collective
import Foundation
import Linalg
import ProcessKit

/// Human-readable byte size (KiB/MiB).
func formatBytes(_ bytes: Int) -> String {
    bytes >= 1 << 20 ? "\(bytes >> 20) MiB" : "\(bytes >> 10) KiB"
}

/// `mosaic-bench collectives`: allreduce bandwidth of the Swift wrapper beside the raw C call.
struct BenchCollectives: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collectives",
        abstract: "Allreduce bandwidth: Communicator.allreduce vs raw MPI_Allreduce, 4 KiB – 64 MiB.",
        discussion: "Run with 2 ranks: Cluster/mpirun-local.sh -np 2 .build/release/mosaic-bench collectives")

    @Option(name: .customLong("min-kib"), help: "Smallest message, KiB.") var minKiB = 4
    @Option(name: .customLong("max-mib"), help: "Largest message, MiB.") var maxMiB = 64
    @Option(name: .customLong("round-mib"), help: "Bytes reduced per timed round, MiB (sets calls per round).")
    var roundMiB = 32
    @Option(help: "Timed rounds per size; raw and wrapper alternate, and each side's fastest round counts.")
    var rounds = 15

    func run() throws {
        Communicator.runJob { comm in
            comm.log("allreduce (sum, Float, in place) on \(comm.size) rank(s); algbw = message bytes / time per call;")
            comm.log("raw and wrapper alternate in \(rounds) rounds per size, the fastest round of each counts")
            comm.log("| message | calls/round | raw MPI_Allreduce GB/s | Communicator.allreduce GB/s | wrapper / raw |")
            comm.log("|---:|---:|---:|---:|---:|")
            var bytes = minKiB << 10
            var worst = Double.infinity
            while bytes <= maxMiB << 20 {
                let n = bytes / 4
                let calls = max(2, min(500, (roundMiB << 20) / bytes))
                var array = [Float](repeating: 0, count: n)
                // Warm-up: connection set-up and buffer registration are not measured.
                for _ in 0..<3 { try comm.allreduce(&array) }
                var bestRaw = Double.infinity, bestWrapped = Double.infinity
                for _ in 0..<rounds {
                    // Raw: the C call itself, on the same buffer.
                    try comm.barrier()
                    var t0 = now()
                    array.withUnsafeMutableBufferPointer { p in
                        for _ in 0..<calls {
                            MPI_Allreduce(
                                mosaic_in_place(), p.baseAddress, Int32(n), mosaic_type_float(), mosaic_op_sum(),
                                mosaic_comm_world())
                        }
                    }
                    bestRaw = min(bestRaw, try comm.allreduce(now() - t0, op: .max))
                    try comm.barrier()
                    t0 = now()
                    for _ in 0..<calls { try comm.allreduce(&array) }
                    bestWrapped = min(bestWrapped, try comm.allreduce(now() - t0, op: .max))
                }
                let raw = Double(bytes) * Double(calls) / bestRaw / 1e9
                let wrapped = Double(bytes) * Double(calls) / bestWrapped / 1e9
                worst = min(worst, wrapped / raw)
                comm.log(
                    String(
                        format: "| %@ | %d | %.2f | %.2f | %.3f |", formatBytes(bytes), calls, raw, wrapped,
                        wrapped / raw))
                bytes *= 4
            }
            comm.log(String(format: "lowest wrapper/raw ratio: %.3f (goal ≥ 0.95)", worst))
        }
    }
}

/// `mosaic-bench gemm`: GFLOP/s of the Linalg wrappers beside a direct cblas_sgemm call.
struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "sgemm GFLOP/s: Matrix.gemm and BLAS.gemm vs a direct cblas_sgemm, at ranker layer shapes.")

    @Option(help: "Seconds per measurement.") var seconds = 0.5
    @Option(help: "OpenBLAS threads (0 = leave OpenBLAS's default).") var threads = 1

    func run() throws {
        if threads > 0 { BLAS.setThreads(threads) }
        print("sgemm, OpenBLAS threads = \(BLAS.threads); shapes are (m, n, k), op = forward NN, dW = TN, dX = NT")
        print("| shape | op | cblas_sgemm GFLOP/s | BLAS.gemm GFLOP/s | ratio | Matrix.gemm GFLOP/s | ratio |")
        print("|---|---|---:|---:|---:|---:|---:|")
        let shapes: [(Int, Int, Int, String)] = [
            (512, 256, 256, "NN"), (256, 256, 512, "TN"), (512, 256, 256, "NT"),
            (512, 512, 256, "NN"), (512, 128, 256, "NN"), (512, 1024, 512, "NN"), (1024, 1024, 1024, "NN"),
        ]
        var rng = RandomStream(seed: 1)
        for (m, n, k, op) in shapes {
            let ta = op.first == "T", tb = op.last == "T"
            let a = Matrix(rows: ta ? k : m, cols: ta ? m : k, data: (0..<m * k).map { _ in rng.uniformFloat() })
            let b = Matrix(rows: tb ? n : k, cols: tb ? k : n, data: (0..<k * n).map { _ in rng.uniformFloat() })
            var c = [Float](repeating: 0, count: m * n)
            let flops = 2.0 * Double(m * n * k)
            let raw = measure(flops) {
                a.data.withUnsafeBufferPointer { pa in
                    b.data.withUnsafeBufferPointer { pb in
                        c.withUnsafeMutableBufferPointer { pc in
                            cblas_sgemm(
                                CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                                blasint(m), blasint(n), blasint(k), 1, pa.baseAddress, blasint(a.cols),
                                pb.baseAddress, blasint(b.cols), 0, pc.baseAddress, blasint(n))
                        }
                    }
                }
            }
            let wrapped = measure(flops) {
                a.data.withUnsafeBufferPointer { pa in
                    b.data.withUnsafeBufferPointer { pb in
                        c.withUnsafeMutableBufferPointer { pc in
                            BLAS.gemm(
                                ta ? .transpose : .none, tb ? .transpose : .none, m: m, n: n, k: k,
                                a: pa.baseAddress!, lda: a.cols, b: pb.baseAddress!, ldb: b.cols, c: pc.baseAddress!,
                                ldc: n)
                        }
                    }
                }
            }
            let matrix = measure(flops) { _ = Matrix.gemm(a, b, transposeA: ta, transposeB: tb) }
            print(
                String(
                    format: "| %d×%d×%d | %@ | %.1f | %.1f | %.3f | %.1f | %.3f |", m, n, k, op as NSString,
                    raw, wrapped, wrapped / raw, matrix, matrix / raw))
        }
    }

    /// GFLOP/s of `body`, best of 3 timed runs of about `seconds` each.
    func measure(_ flops: Double, _ body: () -> Void) -> Double {
        body()
        var t0 = now()
        var iters = 0
        while now() - t0 < 0.05 { body(); iters += 1 }
        let perCall = (now() - t0) / Double(iters)
        let n = max(1, Int(seconds / perCall))
        var best = Double.infinity
        for _ in 0..<3 {
            t0 = now()
            for _ in 0..<n { body() }
            best = min(best, (now() - t0) / Double(n))
        }
        return flops / best / 1e9
    }
}

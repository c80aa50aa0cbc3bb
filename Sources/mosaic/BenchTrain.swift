import ArgumentParser
import CMPI
import Collective
import Foundation
import Learning
import Linalg

/// `mosaic bench train`: training throughput of the DCN-v2 + MMoE ranker on the data-parallel
/// trainer, beside the same architecture in PyTorch CPU, and fused-allreduce bandwidth beside
/// raw MPI_Allreduce. `Cluster/bench/train.sh` runs it on 1 and 2 ranks.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Examples/s of DCN-v2 + MMoE training (1 vs N ranks, vs PyTorch CPU) and fused allreduce bandwidth.",
        discussion: """
            Model: 20 sparse fields × 16 dims from one hashed table + 16 dense features, 3 full-rank \
            cross layers (width 336), MMoE with 3 experts 256-128, 2 towers 64-1, weighted BCE, Adam \
            (sparse lazy Adam for embedding rows). Timed: forward + backward + gradient exchange + \
            update; synthetic batches are generated before timing (so is the peer's data).
            Run: Cluster/bench/train.sh (1 rank × 2 BLAS threads with the PyTorch peer, then 2 ranks × 1 thread).
            """)

    @Option(help: "Global batch size.") var batch = 512
    @Option(help: "Timed steps.") var steps = 20
    @Option(help: "Untimed warm-up steps.") var warmup = 3
    @Option(help: "Timed rounds of --steps steps; the fastest round is reported (the machine may be shared).") var repeats = 3
    @Option(help: "Rows of the hashed embedding table.") var tableRows = 100_000
    @Option(help: "OpenBLAS threads per rank (0 = leave the default); the peer gets threads × ranks.") var threads = 0
    @Option(help: "Python with torch for the peer (rank 0 runs it after the Swift measurement); omit to skip.") var peerPython: String?
    @Option(help: "Peer script.") var peerScript = "Cluster/bench/train_peer.py"
    @Option(help: "Examples/s of a previous 1-rank run, to print the scaling ratio.") var oneRankEps: Double?
    @Option(help: "Examples/s of a previous peer run, to print beside this run.") var peerEps: Double?
    @Option(help: "Label printed for the run (defaults to the rank count).") var ranksLabel: String?

    func run() throws {
        if threads > 0 { BLAS.setThreads(threads) }
        #if os(Linux)
        // Keep freed activation buffers in the heap instead of returning them to the kernel
        // (glibc mmaps blocks over 128 KiB by default, so every step would page-fault its
        // activations afresh); PyTorch's CPU caching allocator does the same.
        _ = glibcMallopt(-3 /* M_MMAP_THRESHOLD */, 1 << 30)
        _ = glibcMallopt(-1 /* M_TRIM_THRESHOLD */, 1 << 30)
        #endif
        Communicator.runJob { comm in
            var config = CrossMMoEConfig()
            config.tableRows = tableRows
            let model = CrossMMoEModel<Float>(config)
            var tc = TrainerConfig()
            tc.checksumEvery = 0
            let trainer = try DataParallelTrainer(model: model, comm: comm, config: tc)
            let data = SyntheticClicks(fields: config.fields, denseWidth: config.denseWidth, tasks: config.tasks, vocabulary: 1_000_000)
            let slice = BatchSharding.slice(globalBatch: batch, rank: comm.rank, size: comm.size)
            let batches = (0 ..< 4).map { s in
                data.batch((s * batch + slice.lowerBound) ..< (s * batch + slice.upperBound), table: model.table)
            }
            comm.log("bench train: \(comm.size) rank(s) × \(BLAS.threads) BLAS thread(s), global batch \(batch), "
                     + "\(model.parameters.count) dense parameters, table \(tableRows)×\(config.dim)")
            for s in 0 ..< warmup { try trainer.step(batches[s % 4], globalBatchSize: batch) }
            var elapsed = Double.infinity, commSeconds = 0.0, loss = 0.0
            for _ in 0 ..< repeats {
                try comm.barrier()
                let comm0 = trainer.communicationSeconds
                let t0 = now()
                for s in 0 ..< steps { loss = try trainer.step(batches[s % 4], globalBatchSize: batch) }
                let round = try comm.allreduce(now() - t0, op: .max)
                let roundComm = try comm.allreduce(trainer.communicationSeconds - comm0, op: .max)
                if round < elapsed { (elapsed, commSeconds) = (round, roundComm) }
            }
            try trainer.verifyReplicas()
            let eps = Double(batch * steps) / elapsed

            // Fused allreduce (GradientFusion over the contiguous gradient buffer) vs one raw
            // MPI_Allreduce of the same bytes.
            var bandwidth: [(String, Double, Double)] = []
            if comm.size > 1 {
                for n in [model.parameters.count, 16 << 20] {
                    var buffer = [Float](repeating: 1, count: n)
                    let iters = max(5, min(200, (256 << 20) / (n * 4)))
                    var bestRaw = Double.infinity, bestFused = Double.infinity
                    for _ in 0 ..< 3 {
                        try comm.barrier()
                        var t = now()
                        buffer.withUnsafeMutableBufferPointer { p in
                            for _ in 0 ..< iters {
                                MPI_Allreduce(mosaic_in_place(), p.baseAddress, Int32(n), mosaic_type_float(), mosaic_op_sum(), mosaic_comm_world())
                            }
                        }
                        bestRaw = min(bestRaw, try comm.allreduce(now() - t, op: .max))
                        try comm.barrier()
                        t = now()
                        try buffer.withUnsafeMutableBufferPointer { p in
                            for _ in 0 ..< iters { try trainer.fusion.allreduceSum(p, comm: comm) }
                        }
                        bestFused = min(bestFused, try comm.allreduce(now() - t, op: .max))
                    }
                    let bytes = Double(n * 4 * iters)
                    bandwidth.append((formatBytes(n * 4), bytes / bestRaw / 1e9, bytes / bestFused / 1e9))
                }
            }

            var peer = peerEps
            if comm.isRoot, let peerPython {
                peer = try runPeer(python: peerPython, threads: max(1, BLAS.threads) * comm.size)
            }
            guard comm.isRoot else { return }
            let label = ranksLabel ?? "\(comm.size)"
            print("")
            print("DCN-v2 + MMoE training, global batch \(batch), fastest of \(repeats) rounds of \(steps) steps (final loss \(String(format: "%.4f", loss))), "
                  + "OpenBLAS core type \(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "auto")")
            print("| run | ranks × BLAS threads | examples/s | ms/step | comm ms/step | ratio |")
            print("|---|---|---:|---:|---:|---:|")
            if let one = oneRankEps {
                print(String(format: "| Swift, 1 rank (earlier run) | 1 × %d | %.0f | %.1f | – | 1.00 |", comm.size * max(1, BLAS.threads), one, Double(batch) / one * 1000))
            }
            print(String(format: "| Swift, %@ rank(s) | %d × %d | %.0f | %.1f | %.1f | %@ |", label as NSString, comm.size, BLAS.threads, eps,
                         elapsed / Double(steps) * 1000, commSeconds / Double(steps) * 1000,
                         (oneRankEps.map { String(format: "%.2f (vs 1 rank)", eps / $0) } ?? "–") as NSString))
            if let peer {
                print(String(format: "| PyTorch CPU, 1 process | 1 × %d | %.0f | %.1f | – | Swift/PyTorch %.2f |",
                             max(1, BLAS.threads) * comm.size, peer, Double(batch) / peer * 1000, eps / peer))
            }
            print("SWIFT_EPS=\(eps)")
            if let peer { print("PEER_EPS=\(peer)") }
            if !bandwidth.isEmpty {
                print("")
                print("Gradient allreduce on \(comm.size) ranks (sum, Float, in place); algbw = bytes / time, best of 3")
                print("| buffer | raw MPI_Allreduce GB/s | fused (GradientFusion, 4 MiB buckets) GB/s | fused / raw |")
                print("|---|---:|---:|---:|")
                for (size, raw, fused) in bandwidth {
                    print(String(format: "| %@ | %.2f | %.2f | %.3f |", size as NSString, raw, fused, fused / raw))
                }
            }
        }
    }

    /// Runs the PyTorch peer and returns its examples/s (its line `PEER_EPS=…`).
    func runPeer(python: String, threads: Int) throws -> Double? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [peerScript, "--batch", "\(batch)", "--steps", "\(steps)", "--warmup", "\(warmup)",
                             "--threads", "\(threads)", "--table-rows", "\(tableRows)", "--repeats", "\(repeats)"]
        var env = ProcessInfo.processInfo.environment.filter { !($0.key.hasPrefix("OMPI_") || $0.key.hasPrefix("PMIX_")) }
        env["OMP_NUM_THREADS"] = "\(threads)"
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        FileHandle.standardError.write(Data(output.utf8))
        guard process.terminationStatus == 0,
              let line = output.split(separator: "\n").first(where: { $0.hasPrefix("PEER_EPS=") })
        else {
            FileHandle.standardError.write(Data("peer failed (status \(process.terminationStatus)); no PyTorch figure\n".utf8))
            return nil
        }
        return Double(line.dropFirst("PEER_EPS=".count))
    }
}

#if os(Linux)
/// glibc's `mallopt` (malloc.h is not part of the Glibc module).
@_silgen_name("mallopt") func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

import ArgumentParser
import CMPI
import Collective
import Foundation
import Learning
import Linalg
import ProcessKit

/// `mosaic-bench train`: training throughput of the DCN-v2 + MMoE ranker on the data-parallel
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
            Run: Cluster/bench/train.sh (1 rank × 1 and × 2 BLAS threads, each beside PyTorch at the same \
            thread count, then 2 ranks × 1 thread, which prints the whole table).
            """)

    @Option(help: "Global batch size (or, with --per-rank-batch, the batch of each rank).") var batch = 512
    @Flag(
        help:
            "Weak scaling, Horovod's convention: every rank trains on --batch examples, so the global batch is --batch × ranks. Default: strong scaling, one global batch of --batch split over the ranks."
    )
    var perRankBatch = false
    @Flag(help: "Skip the gradient-exchange bandwidth table (printed on 2+ ranks).") var skipBandwidth = false
    @Option(help: "Timed steps.") var steps = 20
    @Option(help: "Untimed warm-up steps.") var warmup = 3
    @Option(help: "Timed rounds of --steps steps; the fastest round is reported (the machine may be shared).")
    var repeats = 3
    @Option(help: "Rows of the hashed embedding table.") var tableRows = 100_000
    @Option(help: "OpenBLAS threads per rank (0 = leave the default); the peer gets threads × ranks.") var threads = 0
    @Option(help: "Python with torch for the peer (rank 0 runs it after the Swift measurement); omit to skip.")
    var peerPython: String?
    @Option(help: "Peer script.") var peerScript = "Cluster/bench/train_peer.py"
    @Option(
        help:
            "An earlier run to print in the same table, as `label|ranks×threads|examples/s` (repeatable; Cluster/bench/train.sh passes its 1-rank and peer runs)."
    )
    var earlier: [String] = []
    @Option(help: "Examples/s of the 1 rank × 1 thread run: the base of the scaling ratios.") var baselineEps: Double?
    @Option(help: "Dense exchange bucket of the trainer, in elements.") var bucketElements = TrainerConfig()
        .bucketElements
    @Option(
        help:
            "Gradient exchange on 2+ ranks: overlapped (with backward; updated values gathered during the next forward), in-step (overlapped, but the gather finished inside the step), blocking (after backward), both (= overlapped,blocking), or a comma-separated list (alternating rounds, A/B in one run)."
    )
    var exchange = "overlapped"

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
            tc.bucketElements = bucketElements
            // (overlapsCommunication, gathersDuringForward) per mode.
            var modes: [(overlapped: Bool, gatherDuringForward: Bool)] = []
            for name in (exchange == "both" ? "overlapped,blocking" : exchange).split(separator: ",") {
                switch name {
                case "overlapped": modes.append((true, true))
                case "in-step": modes.append((true, false))
                case "blocking": modes.append((false, false))
                default:
                    throw ValidationError(
                        "--exchange \(exchange): expected overlapped, in-step, blocking, both or a list")
                }
            }
            if comm.size == 1 || modes.isEmpty { modes = [(true, true)] }
            let trainer = try DataParallelTrainer(model: model, comm: comm, config: tc)
            let data = SyntheticClicks(
                fields: config.fields, denseWidth: config.denseWidth, tasks: config.tasks, vocabulary: 1_000_000)
            let batch = perRankBatch ? self.batch * comm.size : self.batch  // the global batch
            let slice = BatchSharding.slice(globalBatch: batch, rank: comm.rank, size: comm.size)
            let batches = (0..<4).map { s in
                data.batch((s * batch + slice.lowerBound)..<(s * batch + slice.upperBound), table: model.table)
            }
            comm.log(
                "bench train: \(comm.size) rank(s) × \(BLAS.threads) BLAS thread(s), global batch \(batch), "
                    + "\(model.parameters.count) dense parameters, table \(tableRows)×\(config.dim)")
            for s in 0..<warmup { try trainer.step(batches[s % 4], globalBatchSize: batch) }
            var loss = 0.0
            /// Fastest round per exchange mode, with rank 0's per-phase seconds in that round
            /// (comm: the slowest rank's).
            struct Round {
                var elapsed = Double.infinity, comm = 0.0, compute = 0.0, update = 0.0, progress = 0.0
                var hidden = 0, buckets = 0
                /// Seconds this rank was runnable but not running (other processes had its core),
                /// rank 0's and the largest over ranks.
                var stolen = 0.0, stolenMax = 0.0
                var rounds: [Double] = []
            }
            var best = [Round](repeating: Round(), count: modes.count)
            for _ in 0..<repeats {
                for (m, mode) in modes.enumerated() {
                    trainer.overlapsCommunication = mode.overlapped
                    trainer.gathersDuringForward = mode.gatherDuringForward
                    try comm.barrier()
                    let comm0 = trainer.communicationSeconds
                    let (compute0, update0, progress0) = (
                        trainer.computeSeconds, trainer.updateSeconds, trainer.progressSeconds
                    )
                    let (hidden0, buckets0) = (trainer.bucketsHidden, trainer.bucketsExchanged)
                    let stolen0 = runQueueSeconds()
                    let t0 = now()
                    for s in 0..<steps { loss = try trainer.step(batches[s % 4], globalBatchSize: batch) }
                    let round = try comm.allreduce(now() - t0, op: .max)
                    let stolen = runQueueSeconds() - stolen0
                    let stolenMax = try comm.allreduce(stolen, op: .max)
                    let roundComm = try comm.allreduce(trainer.communicationSeconds - comm0, op: .max)
                    best[m].rounds.append(round)
                    if round < best[m].elapsed {
                        best[m].elapsed = round
                        best[m].comm = roundComm
                        best[m].compute = trainer.computeSeconds - compute0
                        best[m].update = trainer.updateSeconds - update0
                        best[m].progress = trainer.progressSeconds - progress0
                        best[m].hidden = trainer.bucketsHidden - hidden0
                        best[m].buckets = trainer.bucketsExchanged - buckets0
                        (best[m].stolen, best[m].stolenMax) = (stolen, stolenMax)
                    }
                }
            }
            try trainer.verifyReplicas()
            let eps = Double(batch * steps) / best[0].elapsed

            // The trainer's dense exchange — reduce-scatter of the gradients, then an in-place
            // allgatherv of the updated values, in buckets (DenseShardLayout) — and a plain fused
            // allreduce (GradientFusion), each beside one raw MPI_Allreduce of the same bytes.
            var bandwidth: [(String, Double, Double, Double, Double)] = []
            if comm.size > 1, !skipBandwidth {
                let fusion = GradientFusion()  // 1 Mi-element buckets
                for n in [model.parameters.count, 16 << 20] {
                    var buffer = [Float](repeating: 1, count: n)
                    let layout = DenseShardLayout(count: n, bucketElements: tc.bucketElements, size: comm.size)
                    var shard = [Float](repeating: 0, count: layout.ownedCount(rank: comm.rank))
                    let iters = max(5, min(200, (256 << 20) / (n * 4)))
                    var best = (
                        raw: Double.infinity, fused: Double.infinity, sharded: Double.infinity, started: Double.infinity
                    )
                    for _ in 0..<5 {
                        try comm.barrier()
                        var t = now()
                        buffer.withUnsafeMutableBufferPointer { p in
                            for _ in 0..<iters {
                                MPI_Allreduce(
                                    mosaic_in_place(), p.baseAddress, Int32(n), mosaic_type_float(), mosaic_op_sum(),
                                    mosaic_comm_world())
                            }
                        }
                        best.raw = min(best.raw, try comm.allreduce(now() - t, op: .max))
                        try comm.barrier()
                        t = now()
                        try buffer.withUnsafeMutableBufferPointer { p in
                            for _ in 0..<iters { try fusion.allreduceSum(p, comm: comm) }
                        }
                        best.fused = min(best.fused, try comm.allreduce(now() - t, op: .max))
                        try comm.barrier()
                        t = now()
                        try buffer.withUnsafeMutableBufferPointer { p in
                            try shard.withUnsafeMutableBufferPointer { s in
                                for _ in 0..<iters {
                                    var offset = 0
                                    for b in layout.buckets {
                                        let part = p[b.start..<b.start + b.count]
                                        let mine = b.counts[comm.rank]
                                        try comm.reduceScatter(
                                            UnsafeBufferPointer(rebasing: part),
                                            into: UnsafeMutableBufferPointer(rebasing: s[offset..<offset + mine]),
                                            counts: b.counts)
                                        offset += mine
                                    }
                                    for b in layout.buckets {
                                        try comm.allgatherv(
                                            inPlace: UnsafeMutableBufferPointer(
                                                rebasing: p[b.start..<b.start + b.count]),
                                            counts: b.counts)
                                    }
                                }
                            }
                        }
                        best.sharded = min(best.sharded, try comm.allreduce(now() - t, op: .max))
                        // The same with the trainer's non-blocking collectives, all buckets in flight.
                        try comm.barrier()
                        t = now()
                        try buffer.withUnsafeMutableBufferPointer { p in
                            try shard.withUnsafeMutableBufferPointer { s in
                                for _ in 0..<iters {
                                    var offset = 0
                                    var requests: [CollectiveRequest] = []
                                    for b in layout.buckets {
                                        let mine = b.counts[comm.rank]
                                        requests.append(
                                            try comm.startReduceScatter(
                                                UnsafeBufferPointer(rebasing: p[b.start..<b.start + b.count]),
                                                into: UnsafeMutableBufferPointer(rebasing: s[offset..<offset + mine]),
                                                counts: b.counts))
                                        offset += mine
                                    }
                                    try CollectiveRequest.waitAll(requests)
                                    requests = try layout.buckets.map { b in
                                        try comm.startAllgatherv(
                                            inPlace: UnsafeMutableBufferPointer(
                                                rebasing: p[b.start..<b.start + b.count]),
                                            counts: b.counts)
                                    }
                                    try CollectiveRequest.waitAll(requests)
                                }
                            }
                        }
                        best.started = min(best.started, try comm.allreduce(now() - t, op: .max))
                    }
                    let bytes = Double(n * 4 * iters)
                    bandwidth.append(
                        (
                            formatBytes(n * 4), bytes / best.raw / 1e9, bytes / best.fused / 1e9,
                            bytes / best.sharded / 1e9,
                            bytes / best.started / 1e9
                        ))
                }
            }

            var peer: Double? = nil
            if comm.isRoot, let peerPython {
                peer = try runPeer(python: peerPython, threads: max(1, BLAS.threads) * comm.size)
            }
            guard comm.isRoot else { return }
            let load =
                (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.map(
                    String.init) ?? "?"
            print("")
            print(
                "DCN-v2 + MMoE training, global batch \(batch)\(perRankBatch ? " (\(self.batch) per rank)" : ""), fastest of \(repeats) rounds of \(steps) steps; "
                    + "OpenBLAS core type \(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "auto"); load average \(load); "
                    + "rank 0 may run on CPUs \(allowedCPUs()) (one CPU: bound to a core); waiting ranks "
                    + (ProcessInfo.processInfo.environment["OMPI_MCA_mpi_yield_when_idle"] == "1" ? "yield" : "spin")
            )
            print("| run | ranks × threads | examples/s | ms/step | comm ms/step | vs Swift 1 × 1 |")
            print("|---|---|---:|---:|---:|---:|")
            /// `stepBatch`: the global batch of that run's steps (earlier runs are one-process runs of --batch).
            func row(_ label: String, _ config: String, _ value: Double, _ commMs: String, stepBatch: Int) {
                let ratio = baselineEps.map { String(format: "%.2f", value / $0) } ?? "–"
                print(
                    String(
                        format: "| %@ | %@ | %.0f | %.1f | %@ | %@ |", label as NSString, config as NSString, value,
                        Double(stepBatch) / value * 1000, commMs as NSString, ratio as NSString))
            }
            for line in earlier {
                let parts = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 3, let value = Double(parts[2]) else {
                    throw ValidationError("--earlier \"\(line)\": expected label|ranks×threads|examples/s")
                }
                row(parts[0], parts[1], value, "–", stepBatch: self.batch)
            }
            let shape = "\(comm.size) × \(BLAS.threads)"
            func modeName(_ mode: (overlapped: Bool, gatherDuringForward: Bool)) -> String {
                if comm.size == 1 { return "" }
                if !mode.overlapped { return ", blocking exchange" }
                return mode.gatherDuringForward ? ", overlapped exchange" : ", overlapped exchange, gather in step"
            }
            for (m, mode) in modes.enumerated() {
                row(
                    "Swift, \(comm.size) rank(s)\(perRankBatch ? ", \(self.batch) per rank" : "")\(modeName(mode))",
                    shape, Double(batch * steps) / best[m].elapsed,
                    String(format: "%.1f", best[m].comm / Double(steps) * 1000), stepBatch: batch)
            }
            if let peer {
                row("PyTorch CPU, 1 process", "1 × \(max(1, BLAS.threads) * comm.size)", peer, "–", stepBatch: batch)
                print(
                    String(
                        format: "Swift / PyTorch at %d thread(s): %.2f", max(1, BLAS.threads) * comm.size, eps / peer))
            }
            let ms = { (seconds: Double) in seconds / Double(steps) * 1000 }
            for (m, mode) in modes.enumerated() {
                let b = best[m]
                print(
                    String(
                        format:
                            "per step%@ (rank 0; exchange = the slowest rank's wait outside backward, including waiting for the "
                            + "other rank and forward's wait for values still arriving): forward+backward %.2f ms, exchange driven inside backward %.2f ms, exchange %.2f ms, "
                            + "optimizer update %.2f ms; dense buckets finished inside backward %d of %d; rounds ms/step: %@",
                        modeName(mode) as NSString, ms(b.compute), ms(b.progress), ms(b.comm), ms(b.update), b.hidden,
                        b.buckets,
                        b.rounds.map { String(format: "%.1f", ms($0)) }.joined(separator: " ") as NSString))
            }
            for (m, mode) in modes.enumerated() {
                print(
                    String(
                        format:
                            "run-queue wait%@ (runnable while another process had the core) ms/step: rank 0 %.2f, max over ranks %.2f",
                        modeName(mode) as NSString, ms(best[m].stolen), ms(best[m].stolenMax)))
            }
            for m in modes.indices.dropFirst() {
                print(
                    String(
                        format: "A/B examples/s of (%@) / (%@): best %.3f, median %.3f",
                        String(modeName(modes[0]).dropFirst(2)) as NSString,
                        String(modeName(modes[m]).dropFirst(2)) as NSString, best[m].elapsed / best[0].elapsed,
                        median(best[m].rounds) / median(best[0].rounds)))
            }
            print("SWIFT_EPS=\(eps)")
            if let peer { print("PEER_EPS=\(peer)") }
            if !bandwidth.isEmpty {
                print("")
                print(
                    "Dense gradient exchange on \(comm.size) ranks (sum, Float); algbw = buffer bytes / time per exchange, best of 5"
                )
                print(
                    "| buffer | raw MPI_Allreduce GB/s | fused allreduce (GradientFusion) GB/s | fused / raw "
                        + "| blocking reduce-scatter + allgatherv GB/s | / raw "
                        + "| non-blocking (trainer's) reduce-scatter + allgatherv GB/s | / raw |")
                print("|---|---:|---:|---:|---:|---:|---:|---:|")
                for (size, raw, fused, sharded, started) in bandwidth {
                    print(
                        String(
                            format: "| %@ | %.2f | %.2f | %.3f | %.2f | %.3f | %.2f | %.3f |", size as NSString, raw,
                            fused,
                            fused / raw, sharded, sharded / raw, started, started / raw))
                }
                print("(reduce-scatter + allgatherv in buckets of \(tc.bucketElements) elements)")
            }
        }
    }

    /// The CPUs this process may run on (`Cpus_allowed_list` of /proc/self/status, e.g. `0-1`).
    func allowedCPUs() -> String {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }
        return line.map { $0.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces) } ?? "?"
    }

    /// Seconds the calling thread has spent runnable but waiting for a CPU (Linux
    /// /proc/thread-self/schedstat, second field; 0 elsewhere).
    func runQueueSeconds() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/thread-self/schedstat", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Double(fields[1]) ?? 0) / 1e9 : 0
    }

    func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty
            ? .nan
            : sorted.count % 2 == 1
                ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    /// Runs the PyTorch peer and returns its examples/s (its line `PEER_EPS=…`).
    func runPeer(python: String, threads: Int) throws -> Double? {
        try runPythonPeer(
            python: python, script: peerScript,
            arguments: [
                "--batch", "\(batch)", "--steps", "\(steps)", "--warmup", "\(warmup)",
                "--threads", "\(threads)", "--table-rows", "\(tableRows)", "--repeats", "\(repeats)",
            ], threads: threads)
    }
}

#if os(Linux)
    /// glibc's `mallopt` (malloc.h is not part of the Glibc module).
    @_silgen_name("mallopt") func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

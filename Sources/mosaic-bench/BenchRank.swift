import ArgumentParser
import Collective
import Foundation
import Learning
import Linalg
import ProcessKit
import Ranking

/// `mosaic-bench rank`: serving latency of the ranker — 1,000 candidates for one user with a
/// 2,000-event history on one core — by the serving fast path (`RequestScorer`) beside the batch
/// path, and batch scoring throughput.
struct BenchRank: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rank",
        abstract: "Ranker latency (candidates for one user, one core; p50/p99) and batch scoring throughput.",
        discussion: """
            Model: the world ranker (7 hashed fields × 16, 3 dense, 32-d content, DCN-v2 2 layers, MMoE 3 \
            experts 128-64, towers 32-1 for save and closeup) with DIN over the last 20 events and SIM \
            (GSU hard or soft search, K = 50; ESU 2 heads). One request = the user's source (its \
            per-user category index is built here, once per request) + candidate features + GSU + \
            forward pass, on one BLAS thread, by the serving fast path (`RequestScorer`: user-only \
            work once per request, soft search as one gemm + per-candidate branch-free top-K, DIN as \
            gemms, the ESU in a C kernel, the dense network forward-only with workspaces reused \
            across requests and the request's constant user/context columns folded into the first \
            cross layer). \
            The batch path (`CTRData.batch` + `RankerModel.logits`, slots built per candidate) is \
            timed beside it on fewer requests, and the largest |Δ logit| between the two is \
            printed. Wall-clock and thread CPU time are both reported: on a shared machine the \
            wall-clock tail includes time the process was preempted. Untrained weights (latency \
            does not depend on their values).
            """)

    @Option(help: "Candidates per request.") var candidates = 1_000
    @Option(help: "History events of the user.") var history = 2_000
    @Option(help: "Timed requests of the fast path (after 5 warm-up requests); 0 = no latency run.") var requests = 200
    @Option(
        help: "Timed requests of the batch path (the slow reference; 0 = only the one request that checks the logits).")
    var batchPathRequests = 10
    @Option(help: "GSU searches to time, comma-separated: hard, soft.") var search = "hard,soft"
    @Option(help: "Examples for the batch-throughput run.") var batchExamples = 50_000
    @Option(help: "Candidates per block of the soft-search gemm (RequestScorer.softBlock).") var softBlock = 64
    @Option(
        help:
            "Fold the request's constant input columns into the first cross layer (RequestScorer.foldConstantColumns).")
    var fold = true
    @Option(help: "Expected soft-search threshold survivors per K (RequestScorer.survivorFactor).")
    var survivorFactor = 1.25
    @Option(help: "Training measurement: batch size (0 = skip training).") var trainBatch = 1024
    @Option(help: "Training measurement: timed steps per round.") var trainSteps = 20
    @Option(help: "Training measurement: rounds (the fastest counts, on both sides).") var trainRepeats = 3
    @Option(help: "Training measurement: OpenBLAS threads (the peer gets as many torch threads).") var trainThreads = 1
    @Option(help: "Python with torch for the training peer; omit to skip the peer.") var peerPython: String?
    @Option(help: "Training peer script.") var peerScript = "Cluster/bench/rank_peer.py"

    func run() throws {
        Communicator.runJob { comm in
            BLAS.setThreads(1)
            let pins = 20_000, width = 32, categories = 96
            var r = RandomStream(seed: 5)
            let pinEmbedding = (0..<pins * width).map { _ in Float(r.normal() * 0.2) }
            let pinCategory = (0..<pins).map { _ in Int32(r.int(below: categories)) }
            // One user's history (time-ordered) and the request's candidates.
            let hPin = (0..<history).map { _ in Int64(r.int(below: pins)) }
            let hType = (0..<history).map { _ in UInt8(1 + r.int(below: 4)) }
            let hTime = (0..<history).map { Int64($0) * 60_000 }
            let requestTime = Int64(history) * 60_000
            func source(_ data: CTRData, count: Int) -> SequenceSource {
                SequenceSource(
                    offsets: [0, history], pin: hPin, type: hType, time: hTime,
                    category: hPin.map { pinCategory[Int($0)] }, pinEmbedding: pinEmbedding, width: width,
                    exampleUser: [Int](repeating: 0, count: count),
                    exampleTime: [Int64](repeating: requestTime, count: count),
                    exampleCategory: (0..<count).map { Int32(data.ids[$0 * 7 + 2]) })
            }
            var lines: [String] = []
            var variants: [(String, RankerConfig)] = [
                ("DCN-v2 + MMoE (no sequences)", Self.config(sim: false, din: false, search: "hard")),
                ("+ DIN (last 20)", Self.config(sim: false, din: true, search: "hard")),
            ]
            for s in search.split(separator: ",").map(String.init) {
                guard ["hard", "soft"].contains(s) else {
                    throw ValidationError("--search: '\(s)' is not hard or soft")
                }
                variants.append(("+ DIN + SIM \(s) (K=50)", Self.config(sim: true, din: true, search: s)))
            }
            for (name, c) in requests > 0 ? variants : [] {
                let model = RankerModel<Float>(c)
                let scorer = RequestScorer(model)
                scorer.softBlock = softBlock
                scorer.foldConstantColumns = fold
                scorer.survivorFactor = survivorFactor
                var data = Self.request(
                    candidates, seed: 1, pins: pins, width: width, pinCategory: pinCategory,
                    pinEmbedding: pinEmbedding)
                // Fast path.
                var times: [Double] = [], cpuTimes: [Double] = []
                var fastLogits: [[Float]] = []
                for q in 0..<(requests + 5) {
                    let t0 = now(), c0 = ProcessStats.threadCPUSeconds()
                    data.sequences = source(data, count: candidates)  // the per-user category index
                    let z = try scorer.logits(data, range: 0..<candidates)
                    let dt = now() - t0, dc = ProcessStats.threadCPUSeconds() - c0
                    if q == 0 { fastLogits = z }
                    if q >= 5 {
                        times.append(dt)
                        cpuTimes.append(dc)
                    }
                }
                // Batch path (reference for speed and scores).
                var slowTimes: [Double] = []
                var worst: Float = 0
                for q in 0..<(batchPathRequests + 1) {
                    let t0 = now()
                    data.sequences = source(data, count: candidates)
                    let b: RankerBatch<Float> = data.batch(0..<candidates, firstIndex: 0, config: c, table: model.table)
                    let z = model.logits(b, training: false, step: 0)
                    let dt = now() - t0
                    if q == 0 {
                        for k in z.indices {
                            for i in z[k].indices { worst = max(worst, abs(z[k][i] - fastLogits[k][i])) }
                        }
                    } else {
                        slowTimes.append(dt)
                    }
                }
                /// Percentile p of the times in ms (NaN when there are none, e.g. --batch-path-requests 0).
                func pct(_ t: [Double], _ p: Double) -> Double {
                    guard !t.isEmpty else { return .nan }
                    let s = t.sorted()
                    return s[min(s.count - 1, Int(Double(s.count) * p))] * 1e3
                }
                let p50 = pct(times, 0.5), p99 = pct(times, 0.99)
                let c50 = pct(cpuTimes, 0.5), c99 = pct(cpuTimes, 0.99)
                // Batch throughput: many users' examples (here: one history reused), 4,096 per batch.
                var big = Self.request(
                    batchExamples, seed: 2, pins: pins, width: width, pinCategory: pinCategory,
                    pinEmbedding: pinEmbedding)
                big.sequences = source(big, count: batchExamples)
                let t0 = now()
                var s = 0
                while s < batchExamples {
                    let e = min(batchExamples, s + 4096)
                    let b: RankerBatch<Float> = big.batch(s..<e, firstIndex: s, config: c, table: model.table)
                    _ = model.logits(b, training: false, step: 0)
                    s = e
                }
                let eps = Double(batchExamples) / (now() - t0)
                lines.append(
                    String(
                        format: "| %@ | %d | %d | %.2f | %.2f | %.2f | %.2f | %@ | %.2f | %.1e | %.0f | %.0f |", name,
                        candidates,
                        history, p50, p99, c50, c99, p99 < 10 ? "yes" : c99 < 10 ? "CPU yes, wall no" : "no",
                        pct(slowTimes, 0.5), Double(worst),
                        Double(candidates) / p50 * 1e3, eps))
            }
            var training: [String] = []
            if trainBatch > 0 {
                training = try trainingTable(
                    comm: comm, pins: pins, width: width, pinCategory: pinCategory, pinEmbedding: pinEmbedding,
                    source: source)
            }
            if comm.isRoot && !lines.isEmpty {
                let load =
                    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3)
                    .joined(separator: " ") ?? "?"
                print(
                    "BENCH RANK (1 BLAS thread; fast path: \(requests) requests after 5 warm-up; batch path: \(batchPathRequests); "
                        + "OpenBLAS core type \(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "auto"); load average \(load))"
                )
                print("")
                print(
                    "| model | candidates | history events | fast p50 ms | fast p99 ms | fast CPU p50 ms | fast CPU p99 ms | p99 < 10 ms | batch path p50 ms | max abs Δ logit fast vs batch | fast candidates/s | batch scoring examples/s |"
                )
                print("|---|---|---|---|---|---|---|---|---|---|---|---|")
                lines.forEach { print($0) }
            }
            if comm.isRoot {
                if !training.isEmpty {
                    print("")
                    training.forEach { print($0) }
                }
            }
        }
    }

    /// Training examples/s of the full ranker (DIN + SIM hard) in Swift beside the PyTorch peer
    /// (same layers and sizes, batch, optimizers and thread count); markdown lines.
    func trainingTable(
        comm: Communicator, pins: Int, width: Int, pinCategory: [Int32], pinEmbedding: [Float],
        source: (CTRData, Int) -> SequenceSource
    ) throws -> [String] {
        BLAS.setThreads(trainThreads)
        defer { BLAS.setThreads(1) }
        var c = Self.config(sim: true, din: true, search: "hard")
        c.dropout = 0.1
        let model = RankerModel<Float>(c)
        var tc = TrainerConfig()
        tc.dense = .adam
        tc.sparse = .adam
        tc.schedule = LearningRateSchedule(base: 1e-3)
        tc.checksumEvery = 1_000_000
        let trainer = try DataParallelTrainer(model: model, comm: comm, config: tc)
        // Four batches built before timing (like the peer's data).
        var batches: [RankerBatch<Float>] = []
        var shortReal = 0, longReal = 0
        for q in 0..<4 {
            var d = Self.request(
                trainBatch, seed: 100 + UInt64(q), pins: pins, width: width, pinCategory: pinCategory,
                pinEmbedding: pinEmbedding)
            var r = RandomStream(seed: 200 + UInt64(q))
            d.positions = (0..<trainBatch).map { _ in r.int(below: c.positionBuckets) }
            d.labels = (0..<2).map { _ in (0..<trainBatch).map { _ in Float(r.int(below: 2)) } }
            d.sequences = source(d, trainBatch)
            let b: RankerBatch<Float> = d.batch(
                0..<trainBatch, firstIndex: q * trainBatch, config: c, table: model.table)
            shortReal += b.short.mask.filter { $0 }.count
            longReal += b.long.mask.filter { $0 }.count
            batches.append(b)
        }
        let shortFill = Double(shortReal) / Double(4 * trainBatch * c.shortLength)
        let longFill = Double(longReal) / Double(4 * trainBatch * c.simK)
        for s in 0..<3 { _ = try trainer.step(batches[s % 4], globalBatchSize: trainBatch) }
        var best = Double.infinity
        for _ in 0..<trainRepeats {
            let t0 = now()
            for s in 0..<trainSteps { _ = try trainer.step(batches[s % 4], globalBatchSize: trainBatch) }
            best = min(best, now() - t0)
        }
        let eps = Double(trainBatch * trainSteps) / best
        var peer: Double? = nil
        if comm.isRoot, let peerPython {
            peer = try runPeer(python: peerPython, shortFill: shortFill, longFill: longFill, dropout: c.dropout)
        }
        let load =
            (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.map(
                String.init)
            ?? "?"
        var out = [
            "Training (forward + backward + Adam/sparse Adam update) of the full ranker (DIN + SIM hard, dropout 0.1, "
                + "position tower), batch \(trainBatch), \(trainThreads) thread(s), fastest of \(trainRepeats) rounds of "
                + "\(trainSteps) steps; real slots: short \(String(format: "%.2f", shortFill)), GSU "
                + "\(String(format: "%.2f", longFill)); OpenBLAS core type "
                + "\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "auto"); load average \(load)",
            "",
            "| run | threads | examples/s | ms/step |",
            "|---|---:|---:|---:|",
            String(format: "| Swift (mosaic) | %d | %.0f | %.1f |", trainThreads, eps, Double(trainBatch) / eps * 1e3),
        ]
        if let peer {
            out.append(
                String(
                    format: "| PyTorch CPU | %d | %.0f | %.1f |", trainThreads, peer, Double(trainBatch) / peer * 1e3))
            out.append("")
            out.append(
                String(format: "Swift / PyTorch training examples/s at %d thread(s): %.2f", trainThreads, eps / peer))
        } else {
            out.append("")
            out.append("(no PyTorch peer: pass --peer-python, e.g. via Cluster/bench/rank.sh)")
        }
        out.append("SWIFT_TRAIN_EPS=\(eps)")
        if let peer { out.append("PEER_TRAIN_EPS=\(peer)") }
        return out
    }

    /// Runs the PyTorch peer; its examples/s (line `PEER_EPS=…`), or nil when it fails.
    func runPeer(python: String, shortFill: Double, longFill: Double, dropout: Double) throws -> Double? {
        try runPythonPeer(
            python: python, script: peerScript,
            arguments: [
                "--batch", "\(trainBatch)", "--steps", "\(trainSteps)", "--repeats", "\(trainRepeats)",
                "--threads", "\(trainThreads)", "--short-fill", "\(shortFill)", "--long-fill", "\(longFill)",
                "--dropout", "\(dropout)",
            ], threads: trainThreads)
    }

    /// The benchmark's ranker (the world ranker's shape).
    static func config(sim: Bool, din: Bool, search: String) -> RankerConfig {
        var c = RankerConfig()
        c.fields = 7; c.dim = 16; c.tableRows = 1 << 15; c.hashIDs = true
        c.denseWidth = 3; c.contentWidth = 32
        c.crossLayers = 2; c.experts = 3; c.expertWidths = [128, 64]; c.towerWidths = [32, 1]
        c.tasks = ["save", "closeup"]; c.taskWeights = [1, 0.25]; c.positionBuckets = 32
        c.shortLength = din ? 20 : 0
        c.simK = sim ? 50 : 0; c.simSearch = search
        return c
    }

    /// `n` candidates: random pins with their category and content, fixed context.
    static func request(
        _ n: Int, seed: UInt64, pins: Int, width: Int, pinCategory: [Int32], pinEmbedding: [Float]
    ) -> CTRData {
        var rr = RandomStream(seed: seed)
        var ids: [Int64] = [], dense: [Float] = [], content: [Float] = []
        for _ in 0..<n {
            let p = rr.int(below: pins)
            ids += [7, Int64(p), Int64(pinCategory[p]), 0, 1, 2, 13]
            dense += [Float(rr.uniform()), 3, Float(rr.uniform() * 5)]
            content += pinEmbedding[p * width..<(p + 1) * width]
        }
        var d = CTRData(
            fields: 7, ids: ids, labels: [[Float](repeating: 0, count: n), [Float](repeating: 0, count: n)])
        d.denseWidth = 3; d.dense = dense; d.contentWidth = width; d.content = content
        return d
    }
}

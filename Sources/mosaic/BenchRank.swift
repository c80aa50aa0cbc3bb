import ArgumentParser
import Collective
import Foundation
import Learning
import Linalg
import Ranking

/// `mosaic bench rank`: serving latency of the ranker — 1,000 candidates for one user with a
/// 2,000-event history on one core — and batch scoring throughput.
struct BenchRank: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rank",
        abstract: "Ranker latency (candidates for one user, one core; p50/p99) and batch scoring throughput.",
        discussion: """
            Model: the world ranker (7 hashed fields × 16, 3 dense, 32-d content, DCN-v2 2 layers, MMoE 3 \
            experts 128-64, towers 32-1 for save and closeup) with DIN over the last 20 events and SIM \
            (GSU hard or soft search, K = 50; ESU 2 heads). One request = build the user's category \
            index (once per user) + GSU and DIN slots for every candidate + forward pass, on one \
            BLAS thread. Untrained weights (latency does not depend on their values). No peer is \
            run side by side: no PyTorch ranker with SIM exists in this repository.
            """)

    @Option(help: "Candidates per request.") var candidates = 1_000
    @Option(help: "History events of the user.") var history = 2_000
    @Option(help: "Timed requests.") var requests = 100
    @Option(help: "GSU search: hard, soft.") var search = "hard"
    @Option(help: "Examples for the batch-throughput run.") var batchExamples = 50_000

    func run() throws {
        Communicator.runJob { comm in
            BLAS.setThreads(1)
            let pins = 20_000, width = 32, categories = 96
            var r = RandomStream(seed: 5)
            let pinEmbedding = (0..<pins * width).map { _ in Float(r.normal() * 0.2) }
            let pinCategory = (0..<pins).map { _ in Int32(r.int(below: categories)) }
            func config(sim: Bool, din: Bool) -> RankerConfig {
                var c = RankerConfig()
                c.fields = 7; c.dim = 16; c.tableRows = 1 << 15; c.hashIDs = true
                c.denseWidth = 3; c.contentWidth = width
                c.crossLayers = 2; c.experts = 3; c.expertWidths = [128, 64]; c.towerWidths = [32, 1]
                c.tasks = ["save", "closeup"]; c.taskWeights = [1, 0.25]; c.positionBuckets = 32
                c.shortLength = din ? 20 : 0
                c.simK = sim ? 50 : 0; c.simSearch = search
                return c
            }
            // One user's history (time-ordered) and the request's candidates.
            let hPin = (0..<history).map { _ in Int64(r.int(below: pins)) }
            let hType = (0..<history).map { _ in UInt8(1 + r.int(below: 4)) }
            let hTime = (0..<history).map { Int64($0) * 60_000 }
            let now = Int64(history) * 60_000
            func request(_ n: Int, seed: UInt64) -> CTRData {
                var rr = RandomStream(seed: seed)
                var ids: [Int64] = [], dense: [Float] = [], content: [Float] = []
                for _ in 0..<n {
                    let p = rr.int(below: pins)
                    ids += [7, Int64(p), Int64(pinCategory[p]), 0, 1, 2, 13]
                    dense += [Float(rr.uniform()), 3, Float(rr.uniform() * 5)]
                    content += pinEmbedding[p * width..<(p + 1) * width]
                }
                var d = CTRData(fields: 7, ids: ids, labels: [[Float](repeating: 0, count: n), [Float](repeating: 0, count: n)])
                d.denseWidth = 3; d.dense = dense; d.contentWidth = width; d.content = content
                return d
            }
            var lines: [String] = []
            for (name, sim, din) in [("DCN-v2 + MMoE (no sequences)", false, false), ("+ DIN (last 20)", false, true),
                                     ("+ DIN + SIM \(search) (K=50)", true, true)] {
                let c = config(sim: sim, din: din)
                let model = RankerModel<Float>(c)
                var data = request(candidates, seed: 1)
                var times: [Double] = [], featureTimes: [Double] = []
                for q in 0..<(requests + 5) {
                    let t0 = now_()
                    // Per request: the user's source (its category index is built here, once).
                    let cats = hPin.map { pinCategory[Int($0)] }
                    data.sequences = SequenceSource(
                        offsets: [0, history], pin: hPin, type: hType, time: hTime, category: cats,
                        pinEmbedding: pinEmbedding, width: width,
                        exampleUser: [Int](repeating: 0, count: candidates),
                        exampleTime: [Int64](repeating: now, count: candidates),
                        exampleCategory: (0..<candidates).map { Int32(data.ids[$0 * 7 + 2]) })
                    let b: RankerBatch<Float> = data.batch(0..<candidates, firstIndex: 0, config: c, table: model.table)
                    let tf = now_() - t0
                    let z = model.logits(b, training: false, step: 0)
                    let dt = now_() - t0
                    if z[0].isEmpty { throw RankerError("no scores") }
                    if q >= 5 { times.append(dt); featureTimes.append(tf) }
                }
                times.sort()
                featureTimes.sort()
                let f50 = featureTimes[featureTimes.count / 2] * 1e3
                let p50 = times[times.count / 2] * 1e3
                let p99 = times[min(times.count - 1, Int(Double(times.count) * 0.99))] * 1e3
                // Batch throughput: many users' examples (here: one history reused), 4,096 per batch.
                var big = request(batchExamples, seed: 2)
                big.sequences = SequenceSource(
                    offsets: [0, history], pin: hPin, type: hType, time: hTime, category: hPin.map { pinCategory[Int($0)] },
                    pinEmbedding: pinEmbedding, width: width, exampleUser: [Int](repeating: 0, count: batchExamples),
                    exampleTime: [Int64](repeating: now, count: batchExamples),
                    exampleCategory: (0..<batchExamples).map { Int32(big.ids[$0 * 7 + 2]) })
                let t0 = now_()
                var s = 0
                while s < batchExamples {
                    let e = min(batchExamples, s + 4096)
                    let b: RankerBatch<Float> = big.batch(s..<e, firstIndex: s, config: c, table: model.table)
                    _ = model.logits(b, training: false, step: 0)
                    s = e
                }
                let eps = Double(batchExamples) / (now_() - t0)
                lines.append(String(format: "| %@ | %d | %d | %.2f | %.2f | %.2f | %@ | %.0f |", name, candidates, history, f50, p50, p99,
                                    p99 < 10 ? "yes" : "no", eps))
            }
            if comm.isRoot {
                print("BENCH RANK (1 BLAS thread, \(requests) requests after 5 warm-up)")
                print("")
                print("| model | candidates | history events | features+GSU p50 ms | total p50 ms | total p99 ms | p99 < 10 ms | batch scoring examples/s |")
                print("|---|---|---|---|---|---|---|---|")
                lines.forEach { print($0) }
            }
        }
    }
}

private func now_() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

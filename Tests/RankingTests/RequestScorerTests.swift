import Learning
import Linalg
import Testing

@testable import RankerInference
@testable import Ranking

/// The serving fast path (`RequestScorer`) against the batch path (`CTRData.batch` +
/// `RankerModel.logits(training: false)`), which builds every candidate's slots on its own.
@Suite("Request scorer (serving fast path)")
struct RequestScorerTests {
    static let pins = 300, width = 8, categories = 7

    /// Users: 0 has 240 events (some after the request time), 1 has 3, 2 has none. Pin
    /// embeddings are multiples of 1/4 in [−1, 1], so every inner product is exact in any
    /// summation order and ties in soft search really occur (and must be broken alike).
    static func source(user: Int, time: Int64, candidates: [Int]) -> SequenceSource {
        var r = RandomStream(seed: 17)
        let emb = (0..<pins * width).map { _ in Float(r.int(below: 9) - 4) / 4 }
        let counts = [240, 3, 0]
        var pin: [Int64] = [], type: [UInt8] = [], t: [Int64] = [], offsets = [0]
        for c in counts {
            for j in 0..<c {
                pin.append(Int64(r.int(below: pins)))
                type.append(UInt8(r.int(below: RankerConfig.eventTypes)))
                t.append(Int64(j) * 97_000)
            }
            offsets.append(pin.count)
        }
        let category = pin.map { Int32($0 % Int64(categories)) }
        return SequenceSource(
            offsets: offsets, pin: pin, type: type, time: t, category: category, pinEmbedding: emb, width: width,
            exampleUser: [Int](repeating: user, count: candidates.count),
            exampleTime: [Int64](repeating: time, count: candidates.count),
            exampleCategory: candidates.map { Int32($0 % categories) })
    }

    static func config(search: String, din: Bool, sim: Bool) -> RankerConfig {
        var c = RankerConfig()
        c.fields = 4; c.dim = 12; c.tableRows = 997; c.hashIDs = true
        c.denseWidth = 2; c.contentWidth = width
        c.crossLayers = 2; c.experts = 2; c.expertWidths = [16, 8]; c.towerWidths = [4, 1]
        c.tasks = ["save", "closeup"]; c.taskWeights = [1, 0.5]; c.positionBuckets = 4
        c.shortLength = din ? 6 : 0
        c.simK = sim ? 9 : 0; c.simHeads = 2; c.simSearch = search; c.timeBuckets = 12
        c.candidateField = 1
        c.seed = 3
        return c
    }

    /// A request of `n` candidates for `user` at `time`; weights spread so attention is far from
    /// uniform (a wrong event set changes the scores).
    static func request(_ c: RankerConfig, user: Int, time: Int64, n: Int) -> (RankerModel<Float>, CTRData) {
        var r = RandomStream(seed: 23)
        let candidates = (0..<n).map { _ in r.int(below: pins) }
        var emb = RandomStream(seed: 17)
        let pinEmb = (0..<pins * width).map { _ in Float(emb.int(below: 9) - 4) / 4 }
        var data = CTRData(
            fields: 4, ids: candidates.flatMap { [Int64(user), Int64($0), Int64($0 % categories), 2] },
            labels: [[Float](repeating: 0, count: n), [Float](repeating: 0, count: n)])
        data.denseWidth = 2
        data.dense = (0..<n * 2).map { _ in Float(r.normal()) }
        data.contentWidth = width
        data.content = candidates.flatMap { pinEmb[$0 * width..<($0 + 1) * width] }
        data.sequences = source(user: user, time: time, candidates: candidates)
        let model = RankerModel<Float>(c)
        for i in model.table.values.indices { model.table.values[i] = Float(r.normal()) }
        let store = model.parameters
        for i in 0..<store.count { store.values[i] += Float(r.normal() * 0.3) }
        return (model, data)
    }

    static let cases: [(String, Bool, Bool, Int)] = [
        ("hard", true, true, 0), ("soft", true, true, 0), ("soft", false, true, 0), ("hard", false, true, 0),
        ("hard", true, false, 0), ("soft", true, true, 1), ("hard", true, true, 2), ("soft", true, true, 2),
    ]

    /// Transformer cases: (user, layers, time encoding, with DIN + SIM hard, content in the tokens).
    static let transformerCases: [(Int, Int, Bool, Bool, Bool)] = [
        (0, 1, true, false, false), (1, 1, true, false, false), (2, 1, true, false, false), (0, 2, true, false, false),
        (0, 1, false, false, false), (0, 2, false, true, false), (1, 2, true, true, false), (0, 1, true, false, true),
        (1, 2, false, true, true), (2, 1, true, false, true),
    ]

    @Test(
        "fast path equals the batch path with the transformer (events encoded once per request)",
        arguments: 0..<transformerCases.count)
    func sameScoresTransformer(_ which: Int) throws {
        let (user, layers, time, others, content) = Self.transformerCases[which]
        var c = Self.config(search: "hard", din: others, sim: others)
        c.transformerLength = 7; c.transformerHeads = 3; c.transformerLayers = layers; c.transformerTime = time
        c.transformerContent = content
        let (model, data) = Self.request(c, user: user, time: 200 * 97_000 + 5, n: 70)
        let fast = try RequestScorer(model).logits(data, range: 0..<data.count)
        let batch: RankerBatch<Float> = data.batch(0..<data.count, firstIndex: 0, config: c, table: model.table)
        let slow = model.logits(batch, training: false, step: 0)
        var worst: Float = 0, scale: Float = 0
        for k in slow.indices {
            for i in slow[k].indices {
                worst = max(worst, abs(slow[k][i] - fast[k][i]))
                scale = max(scale, abs(slow[k][i]))
            }
        }
        #expect(worst <= 1e-5 * max(1, scale), "case \(which): max |Δlogit| \(worst), max |logit| \(scale)")
        #expect(Set(fast[0].map { ($0 * 1e4).rounded() }).count > 10)
        // Not vacuous: the transformer's output depends on the history (user 0 against user 2's
        // empty one), so an encoder that ignored the events would fail the equality above.
        if user == 0, let t = model.transformer {
            let d = c.dim, q = Tensor<Float>(rows: 1, cols: d, data: (0..<d).map { Float($0) / 10 })
            let events = (0..<7 * d).map { Float(($0 * 7) % 11) / 5 - 1 }
            let with = t.forwardRequest(events: events, count: 7, candidates: q).data
            let without = t.forwardRequest(events: [], count: 0, candidates: q).data
            #expect(zip(with, without).contains { abs($0 - $1) > 1e-3 })
        }
    }

    @Test(
        "fast path scores equal the batch path's (DIN, SIM hard/soft; long, short and empty histories)",
        arguments: 0..<cases.count)
    func sameScores(_ which: Int) throws {
        let (search, din, sim, user) = Self.cases[which]
        let c = Self.config(search: search, din: din, sim: sim)
        // Request time: event 200 of user 0 (40 later events must be ignored).
        let (model, data) = Self.request(c, user: user, time: 200 * 97_000 + 5, n: 70)
        let fast = try RequestScorer(model).logits(data, range: 0..<data.count)
        for shared in [true, false] {
            model.sharedInference = shared
            let batch: RankerBatch<Float> = data.batch(0..<data.count, firstIndex: 0, config: c, table: model.table)
            let slow = model.logits(batch, training: false, step: 0)
            var worst: Float = 0, scale: Float = 0
            for k in slow.indices {
                for i in slow[k].indices {
                    worst = max(worst, abs(slow[k][i] - fast[k][i]))
                    scale = max(scale, abs(slow[k][i]))
                }
            }
            // Float rounding only (different summation orders): relative to the logits' scale.
            #expect(
                worst <= 1e-5 * max(1, scale),
                "\(search) din=\(din) sim=\(sim) user=\(user) shared=\(shared): max |Δlogit| \(worst), max |logit| \(scale)"
            )
        }
        // Not vacuous: the logits differ between candidates.
        #expect(Set(fast[0].map { ($0 * 1e4).rounded() }).count > 10)
    }

    @Test("fast GSU selects exactly the batch path's events (soft: ties to the older event)")
    func sameEvents() throws {
        for search in ["hard", "soft"] {
            let c = Self.config(search: search, din: false, sim: true)
            let (model, data) = Self.request(c, user: 0, time: 200 * 97_000 + 5, n: 150)
            let scorer = RequestScorer(model)
            scorer.softBlock = 16
            let src = data.sequences!
            let end = src.end(user: 0, before: src.exampleTime[0])
            scorer.selectEvents(src, data: data, range: 0..<data.count, user: 0, start: 0, end: end)
            var ties = 0
            for i in 0..<data.count {
                let q = data.content[i * Self.width..<(i + 1) * Self.width]
                let expected = src.gsu(example: i, k: c.simK, mode: search, query: q)
                let got = (0..<Int(scorer.gsuCount[i])).map { Int(scorer.gsuIndex[i * c.simK + $0]) }.sorted()
                #expect(got == expected, "\(search) candidate \(i)")
                if search == "soft" {
                    // Count rows where the K-th and (K+1)-th scores tie (the tie rule is exercised).
                    let s = (0..<end).map { j in
                        (0..<Self.width).reduce(Float(0)) {
                            $0 + q[q.startIndex + $1] * src.pinEmbedding[Int(src.pin[j]) * Self.width + $1]
                        }
                    }.sorted(by: >)
                    if s[c.simK - 1] == s[c.simK] { ties += 1 }
                }
            }
            if search == "soft" { #expect(ties > 10, "ties at the K-th score: \(ties)") }
        }
    }

    @Test("exact top-K on skewed, constant and tied rows matches TopKHeap (ties to the smaller index)")
    func topKRows() {
        var r = RandomStream(seed: 4)
        let h = 517, k = 50
        let rows: [[Float]] = [
            (0..<h).map { _ in Float(r.normal()) },
            [Float](repeating: 0.5, count: h),  // all tied
            (0..<h).map { _ in Float(r.exponential(rate: 1)) * Float(r.exponential(rate: 1)) },  // heavy tail
            (0..<h).map { j in j == 300 ? 1e6 : Float(r.int(below: 3)) },  // one outlier, many ties
            (0..<h).map { j in Float(-j) },  // sorted descending
        ]
        let z = Float(RequestScorer.upperQuantile(1.5 * Double(k) / Double(h)))
        var keys = [UInt64](repeating: 0, count: h + 8), out = [Int32](repeating: -1, count: k)
        var indices = [Int32](repeating: 0, count: h + 16)
        for (n, row) in rows.enumerated() {
            let mean = row.reduce(0, +) / Float(h)
            let std = (row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(h)).squareRoot()
            row.withUnsafeBufferPointer { s in
                // The row's own statistics, and deliberately wrong ones (the result must not change).
                for (m, sd) in [(mean, std), (mean + 10 * std, std), (mean - 5, 0), (.nan, .nan)] {
                    RequestScorer.topK(
                        s.baseAddress!, count: h, k: k, mean: m, std: sd, z: z, keys: &keys, indices: &indices,
                        into: &out)
                    let expected = TopK.largest(row, k: k).map { Int($0.id) }.sorted()
                    #expect(out.map(Int.init).sorted() == expected, "row \(n), mean \(m), std \(sd)")
                }
            }
        }
    }

    @Test("one scorer reused across requests of different sizes and users gives a fresh scorer's logits, bit for bit")
    func workspaceReuse() throws {
        let c = Self.config(search: "soft", din: true, sim: true)
        let model = Self.request(c, user: 0, time: 200 * 97_000 + 5, n: 70).0
        let scorer = RequestScorer(model)
        for (user, n) in [(0, 70), (0, 150), (1, 20), (2, 5), (0, 70), (0, 1), (0, 150)] {
            let data = Self.request(c, user: user, time: 200 * 97_000 + 5, n: n).1
            let again = try scorer.logits(data, range: 0..<n)
            let fresh = try RequestScorer(model).logits(data, range: 0..<n)
            #expect(again == fresh, "user \(user), \(n) candidates")
        }
        // Buffers grew to the largest request only.
        let held = scorer.workspaceFloats
        _ = try scorer.logits(Self.request(c, user: 0, time: 200 * 97_000 + 5, n: 40).1, range: 0..<40)
        #expect(scorer.workspaceFloats == held)
    }

    @Test(
        "folding the request's constant columns (user, context) into the first cross layer changes logits only by rounding"
    )
    func foldedColumns() throws {
        for search in ["hard", "soft"] {
            let c = Self.config(search: search, din: true, sim: true)
            let (model, data) = Self.request(c, user: 0, time: 200 * 97_000 + 5, n: 70)
            let folded = RequestScorer(model), plain = RequestScorer(model)
            plain.foldConstantColumns = false
            let a = try folded.logits(data, range: 0..<70), b = try plain.logits(data, range: 0..<70)
            // Fields 0 (user) and 3 (context) are the same for every candidate: 2 · dim columns.
            #expect(folded.lastConstantColumns >= 2 * c.dim)
            #expect(plain.lastConstantColumns == 0)
            // The same criterion as the batch-path comparison: float rounding relative to the logits' scale.
            var worst: Float = 0, scale: Float = 0
            for k in a.indices {
                for i in a[k].indices {
                    worst = max(worst, abs(a[k][i] - b[k][i]))
                    scale = max(scale, abs(b[k][i]))
                }
            }
            #expect(worst <= 1e-5 * max(1, scale), "\(search): max |Δlogit| \(worst), max |logit| \(scale)")
        }
    }

    @Test("low-rank mixture cross layers: fast path equals the batch path", arguments: [false, true])
    func lowRankCross(_ fold: Bool) throws {
        var c = Self.config(search: "soft", din: true, sim: true)
        c.crossRank = 3
        c.crossExperts = 2
        let (model, data) = Self.request(c, user: 0, time: 200 * 97_000 + 5, n: 70)
        let scorer = RequestScorer(model)
        scorer.foldConstantColumns = fold
        let fast = try scorer.logits(data, range: 0..<70)
        let batch: RankerBatch<Float> = data.batch(0..<70, firstIndex: 0, config: c, table: model.table)
        let slow = model.logits(batch, training: false, step: 0)
        var worst: Float = 0, scale: Float = 0
        for k in slow.indices {
            for i in slow[k].indices {
                worst = max(worst, abs(slow[k][i] - fast[k][i]))
                scale = max(scale, abs(slow[k][i]))
            }
        }
        #expect(worst <= 1e-5 * max(1, scale), "max |Δlogit| \(worst), max |logit| \(scale)")
        #expect(Set(fast[0].map { ($0 * 1e4).rounded() }).count > 10)
    }

    @Test("a request mixing users is refused with a clear error")
    func mixedUsers() throws {
        let c = Self.config(search: "hard", din: true, sim: true)
        let (model, data) = Self.request(c, user: 0, time: 1_000_000, n: 5)
        var mixed = data
        let s = data.sequences!
        mixed.sequences = SequenceSource(
            offsets: s.offsets, pin: s.pin, type: s.type, time: s.time, category: s.category,
            pinEmbedding: s.pinEmbedding, width: s.width, exampleUser: [0, 0, 1, 0, 0],
            exampleTime: s.exampleTime, exampleCategory: s.exampleCategory)
        #expect(throws: RankerError.self) { try RequestScorer(model).logits(mixed, range: 0..<5) }
    }
}

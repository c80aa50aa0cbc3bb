import Learning
import Linalg
import Ranking
import Testing

@Suite("SIM GSU and DIN slots")
struct SequenceSourceTests {
    /// One user with 12 events at t = 100, 200, …, 1200; pin j has category j % 3 and a random
    /// 4-d embedding; a second user with no events.
    func source(exampleTime: Int64, category: Int32) -> SequenceSource {
        var r = RandomStream(seed: 9)
        let emb = (0..<12 * 4).map { _ in Float(r.normal()) }
        return SequenceSource(
            offsets: [0, 12, 12], pin: (0..<12).map { Int64($0) }, type: (0..<12).map { UInt8([1, 3, 4][$0 % 3]) },
            time: (1...12).map { Int64($0 * 100) }, category: (0..<12).map { Int32($0 % 3) }, pinEmbedding: emb,
            width: 4, exampleUser: [0, 1], exampleTime: [exampleTime, exampleTime],
            exampleCategory: [category, category])
    }

    @Test("hard search: the last K events of the candidate's category strictly before the example time")
    func hardSearch() {
        let s = source(exampleTime: 1000, category: 1)  // events before t: 0…8 (t = 100…900)
        #expect(s.gsu(example: 0, k: 2, mode: "hard", query: [0, 0, 0, 0]) == [4, 7])
        #expect(s.gsu(example: 0, k: 10, mode: "hard", query: [0, 0, 0, 0]) == [1, 4, 7])
        // Exactly at an event's time: that event is not "before".
        let at = source(exampleTime: 800, category: 1)  // event 7 has t = 800
        #expect(at.gsu(example: 0, k: 5, mode: "hard", query: [0, 0, 0, 0]) == [1, 4])
        #expect(s.gsu(example: 1, k: 5, mode: "hard", query: [0, 0, 0, 0]).isEmpty)  // no history
    }

    @Test("soft search: top-K by inner product among events before the example time, oldest first")
    func softSearch() {
        let s = source(exampleTime: 1000, category: 0)
        let q: [Float] = [0.3, -1, 0.5, 2]
        let scored = (0..<9).map { j in (j, (0..<4).reduce(Float(0)) { $0 + q[$1] * s.pinEmbedding[j * 4 + $1] }) }
        let expected = scored.sorted { $0.1 > $1.1 }.prefix(4).map(\.0).sorted()
        #expect(s.gsu(example: 0, k: 4, mode: "soft", query: q[...]) == expected)
    }

    @Test("LR history content: mean embedding of the last L events before t, hides excluded; zero without history")
    func meanHistoryContent() {
        let s = source(exampleTime: 1000, category: 0)  // events before t: 0…8; types 1, 3, 4 (hide) repeating
        let mean: [Double] = s.meanHistoryContent(indices: [0, 1], length: 4)
        // The last 4 events before t are 5…8; 5 and 8 are hides (j % 3 == 2): mean of 6 and 7.
        for c in 0..<4 {
            let expected = Double((s.pinEmbedding[6 * 4 + c] + s.pinEmbedding[7 * 4 + c]) / 2)
            #expect(abs(mean[c] - expected) < 1e-6)
        }
        #expect(mean[4..<8].allSatisfy { $0 == 0 })  // user 1 has no events
    }

    @Test("time buckets are log2 of minutes since the event, capped")
    func buckets() {
        #expect(SequenceSource.bucket(sinceMs: 0, buckets: 16) == 0)
        #expect(SequenceSource.bucket(sinceMs: 60_000, buckets: 16) == 1)
        #expect(SequenceSource.bucket(sinceMs: 7 * 60_000, buckets: 16) == 3)
        #expect(SequenceSource.bucket(sinceMs: 1 << 40, buckets: 16) == 15)
    }

    @Test("batch slots: DIN gets the last events before t (padded), SIM the GSU events with types and buckets")
    func fill() {
        let s = source(exampleTime: 1000, category: 1)
        var c = RankerConfig()
        c.fields = 2; c.candidateField = 1; c.shortLength = 3; c.simK = 4; c.simSearch = "hard"; c.timeBuckets = 16
        var data = CTRData(fields: 2, ids: [0, 5, 1, 6], labels: [[1, 0]])
        data.contentWidth = 4
        data.content = [Float](repeating: 0, count: 8)
        data.sequences = s
        let table = EmbeddingTable<Float>(name: "t", rows: 20, dim: 2, seed: 1)
        let b: RankerBatch<Float> = data.batch([0, 1], firstIndex: 0, config: c, table: table)
        #expect(b.short.rows == [6, 7, 8, 0, 0, 0])
        #expect(b.short.mask == [true, true, true, false, false, false])
        #expect(b.short.types == [1, 3, 4, 0, 0, 0])
        #expect(b.long.rows == [1, 4, 7, 0, 0, 0, 0, 0])
        #expect(b.long.mask == [true, true, true, false, false, false, false, false])
        #expect(b.long.types == [3, 3, 3, 0, 0, 0, 0, 0])
    }
}

@Suite("Epoch permutation")
struct EpochPermutationTests {
    @Test(
        "a permutation of 0..<n for several n; different per epoch; O(1) state", arguments: [1, 2, 3, 17, 1000, 4097])
    func permutation(_ n: Int) {
        let a = EpochPermutation(n: n, seed: 5, epoch: 1), b = EpochPermutation(n: n, seed: 5, epoch: 2)
        let pa = (0..<n).map { a($0) }, pb = (0..<n).map { b($0) }
        #expect(pa.sorted() == Array(0..<n))
        #expect(pb.sorted() == Array(0..<n))
        if n >= 17 { #expect(pa != pb && pa != Array(0..<n)) }
    }
}

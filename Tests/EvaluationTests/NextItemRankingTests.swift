import Collective
import Evaluation
import Foundation
import Linalg
import Testing

@Suite("Next-item full ranking (leave-one-out)")
struct NextItemRankingTests {
    /// Random sequences over `items` items, each of length 3…8.
    func randomSequences(users: Int, items: Int, seed: UInt64) -> [[Int]] {
        (0..<users).map { u in
            var r = RandomStream(seed: seed, rank: 0, index: UInt64(u))
            return (0..<(3 + r.int(below: 6))).map { _ in 1 + r.int(below: items) }
        }
    }

    @Test("co-occurrence ranks equal a brute-force reference (weights 1, 1/2, 1/3; input removed; average ties)")
    func coOccurrenceAgainstReference() throws {
        let items = 30
        let sequences = randomSequences(users: 80, items: items, seed: 5)
        let baskets = NextItemFullRanking.trainingPrefixes(sequences)
        let method = CoOccurrenceSimilarity(baskets: baskets, itemCount: items)
        let result = try NextItemFullRanking(target: .test, recent: 3, cutoffs: [1, 5, 10])
            .evaluate(sequences: sequences, itemCount: items, methods: [method], comm: try Communicator.world())[0]

        // Reference: counts from scratch, scores by the definition, rank by counting.
        var count = [Double](repeating: 0, count: items + 1)
        var pair = [[Double]](repeating: [Double](repeating: 0, count: items + 1), count: items + 1)
        for b in baskets {
            let set = Set(b)
            for i in set {
                count[i] += 1
                for j in set where j != i { pair[i][j] += 1 }
            }
        }
        var reference = RankAccumulator(cutoffs: [1, 5, 10])
        for s in sequences {
            let input = Array(s.dropLast()), target = s.last!
            let query = Array(input.suffix(3).reversed())
            func score(_ j: Int) -> Float {
                var total: Float = 0
                for (k, i) in query.enumerated() where pair[i][j] > 0 {
                    total += (1 / Float(k + 1)) * Float(pair[i][j] / (count[i] * count[j]).squareRoot())
                }
                return total
            }
            let t = score(target)
            var higher = 0.0, equal = 0.0
            for j in 1...items where j != target && !input.contains(j) {
                let v = score(j)
                if v > t { higher += 1 } else if v == t { equal += 1 }
            }
            reference.add(rank: higher + equal / 2)
        }
        #expect(result.users == sequences.count)
        for k in [1, 5, 10] {
            #expect(abs(result.hitRate(k) - reference.hitRate(k)) < 1e-12, "HR@\(k)")
            #expect(abs(result.ndcg(k) - reference.ndcg(k)) < 1e-9, "NDCG@\(k)")
        }
    }

    @Test("a similarity that knows each user's next item ranks every target first")
    func oracleNeighbours() throws {
        let items = 40
        // Each user walks the cycle 1, 2, …, items, 1, …; the neighbour list of i is its successor.
        let sequences = (0..<50).map { u in (0..<(4 + u % 4)).map { 1 + (u + $0) % items } }
        let chain = NeighborSimilarity(neighbors: (0...items).map { i in [(item: 1 + i % items, weight: 1)] })
        let comm = try Communicator.world()
        let test = try NextItemFullRanking(target: .test, recent: 1, cutoffs: [1, 10])
            .evaluate(sequences: sequences, itemCount: items, methods: [chain], comm: comm)[0]
        #expect(test.hitRate(1) == 1 && test.ndcg(10) == 1)
    }

    @Test("embedding similarity adds weight · dot(query, item) for every item, as a direct loop does")
    func embeddingDotProducts() {
        let items = 25, d = 7
        var r = RandomStream(seed: 9)
        let z = (0..<((items + 1) * d)).map { _ in Float(r.uniform()) - 0.5 }
        var scores = [Float](repeating: 1, count: items + 1)
        EmbeddingSimilarity(vectors: z, d: d).addScores(of: 3, weight: 0.5, into: &scores)
        for j in 0...items {
            var dot: Float = 0
            for c in 0..<d { dot += z[3 * d + c] * z[j * d + c] }
            #expect(abs(scores[j] - (1 + 0.5 * dot)) < 1e-5, "item \(j)")
        }
    }

    @Test("transition similarity equals its definition: windowed, decayed, both directions, normalised")
    func transitionsAgainstDefinition() {
        let items = 20
        let sequences = randomSequences(users: 60, items: items, seed: 11)
        var config = TransitionSimilarity.Config()
        config.window = 3
        config.decay = 0.5
        config.backward = 0.25
        config.rowExponent = 0.5
        config.popularityExponent = 0.2
        let method = TransitionSimilarity(sequences: sequences, itemCount: items, config: config)
        var t = [[Double]](repeating: [Double](repeating: 0, count: items + 1), count: items + 1)
        var count = [Double](repeating: 0, count: items + 1)
        for s in sequences {
            for p in s.indices {
                count[s[p]] += 1
                for q in (p + 1)..<min(s.count, p + 4) {
                    let w = Foundation.pow(0.5, Double(q - p - 1))
                    t[s[p]][s[q]] += w
                    t[s[q]][s[p]] += 0.25 * w
                }
            }
        }
        for i in 1...items {
            var scores = [Float](repeating: 0, count: items + 1)
            method.addScores(of: i, weight: 2, into: &scores)
            let mass = t[i].reduce(0, +)
            for j in 1...items {
                let expected = t[i][j] == 0 ? 0 : 2 * t[i][j] / mass.squareRoot() / Foundation.pow(count[j], 0.2)
                #expect(abs(Double(scores[j]) - expected) < 1e-5 * max(1, expected), "item \(i) → \(j)")
            }
        }
        let weights: [Float] = method.queryWeights(recent: 3)
        let expected: [Float] = (0..<5).map { Foundation.pow(Float(0.6), Float($0)) }
        #expect(weights == expected, "the model's own query: 5 items, each older one 0.6 times the next")
    }

    @Test("transitions learn a sequential world: an HR@1 floor that the same counts without order fail")
    func transitionsQualityFloor() throws {
        // Each item has one likely successor (probability 0.5); otherwise the next item is uniform.
        let items = 300
        var r = RandomStream(seed: 21)
        let successor = (0...items).map { _ in 1 + r.int(below: items) }
        let sequences = (0..<1_500).map { u -> [Int] in
            var g = RandomStream(seed: 22, rank: 0, index: UInt64(u))
            var s = [1 + g.int(below: items)]
            for _ in 0..<(5 + g.int(below: 8)) {
                s.append(g.uniform() < 0.5 ? successor[s.last!] : 1 + g.int(below: items))
            }
            return s
        }
        let prefixes = NextItemFullRanking.trainingPrefixes(sequences)
        // A control that keeps every count but loses the order: each prefix shuffled.
        let shuffled = prefixes.enumerated().map { u, s -> [Int] in
            var g = RandomStream(seed: 23, rank: 0, index: UInt64(u))
            var s = s
            for i in stride(from: s.count - 1, to: 0, by: -1) { s.swapAt(i, g.int(below: i + 1)) }
            return s
        }
        let comm = try Communicator.world()
        let results = try NextItemFullRanking(target: .test, recent: 3, cutoffs: [1, 10]).evaluate(
            sequences: sequences, itemCount: items,
            methods: [
                TransitionSimilarity(sequences: prefixes, itemCount: items),
                TransitionSimilarity(sequences: shuffled, itemCount: items),
                CoOccurrenceSimilarity(baskets: prefixes, itemCount: items),
            ], comm: comm)
        let transitions = results[0].hitRate(1), unordered = results[1].hitRate(1)
        let coOccurrence = results[2].hitRate(1)
        // The best possible HR@1 is about 0.5 (the chance that the successor follows); chance is 1/300.
        #expect(transitions >= 0.33, "measured 0.369")
        #expect(transitions >= unordered + 0.05, "the order is what they learn: measured 0.369 vs 0.285")
        #expect(transitions >= coOccurrence + 0.03, "measured 0.369 vs 0.323")
    }

    @Test("published figures are printed only for the dataset they belong to")
    func publishedFiguresByDataset() {
        #expect(PublishedFigures.fullRanking(fileName: "Beauty.txt", users: 22_363, items: 12_101).count == 2)
        #expect(PublishedFigures.fullRanking(fileName: "Beauty.txt", users: 100, items: 12_101).isEmpty)
        #expect(PublishedFigures.fullRanking(fileName: "Sports.txt", users: 22_363, items: 12_101).isEmpty)
    }
}

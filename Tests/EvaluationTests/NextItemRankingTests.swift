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

    @Test("published figures are printed only for the dataset they belong to")
    func publishedFiguresByDataset() {
        #expect(PublishedFigures.fullRanking(fileName: "Beauty.txt", users: 22_363, items: 12_101).count == 2)
        #expect(PublishedFigures.fullRanking(fileName: "Beauty.txt", users: 100, items: 12_101).isEmpty)
        #expect(PublishedFigures.fullRanking(fileName: "Sports.txt", users: 22_363, items: 12_101).isEmpty)
    }
}

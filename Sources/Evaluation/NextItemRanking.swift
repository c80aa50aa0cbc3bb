import Collective
import Foundation
import Linalg

/// A similarity between items that scores every item against one query item: adds
/// `weight · sim(item, j)` to `scores[j]` for every `j` in `0 ... itemCount` (index 0 unused).
public protocol ItemSimilarity {
    func addScores(of item: Int, weight: Float, into scores: inout [Float])
    /// The weights of a user's query items, most recent first; their count is the query's length.
    func queryWeights(recent: Int) -> [Float]
}

extension ItemSimilarity {
    /// The default query: the last `recent` items weighted 1, 1/2, 1/3, … from the most recent.
    public func queryWeights(recent: Int) -> [Float] { (0..<recent).map { 1 / Float($0 + 1) } }
}

/// Cosine of item co-occurrence in the users' training prefixes (each user a basket):
/// `c(i, j) / sqrt(c(i) · c(j))`.
public struct CoOccurrenceSimilarity: ItemSimilarity {
    let count: [Double]
    let pairs: [[Int: Double]]

    /// Counts over `baskets` (each user's training items; repeats within a basket count once).
    public init(baskets: [[Int]], itemCount: Int) {
        var count = [Double](repeating: 0, count: itemCount + 1)
        var pairs = [[Int: Double]](repeating: [:], count: itemCount + 1)
        for basket in baskets {
            let items = Array(Set(basket.filter { $0 >= 1 && $0 <= itemCount }))
            for i in items {
                count[i] += 1
                for j in items where j != i { pairs[i][j, default: 0] += 1 }
            }
        }
        self.count = count
        self.pairs = pairs
    }

    public func addScores(of item: Int, weight: Float, into scores: inout [Float]) {
        guard item < pairs.count else { return }
        for (j, c) in pairs[item] { scores[j] += weight * Float(c / (count[item] * count[j]).squareRoot()) }
    }
}

/// Cosine of the items' attribute multi-hot vectors.
public struct AttributeSimilarity: ItemSimilarity {
    let attributes: [[Int]]
    let posting: [Int: [Int]]

    /// `attributes[i]`: item `i`'s attribute ids (unique), for items `0 ... itemCount`.
    public init(attributes: [[Int]]) {
        self.attributes = attributes
        var posting: [Int: [Int]] = [:]
        for (i, tags) in attributes.enumerated() { for a in tags { posting[a, default: []].append(i) } }
        self.posting = posting
    }

    public func addScores(of item: Int, weight: Float, into scores: inout [Float]) {
        guard item < attributes.count else { return }
        let ni = Float(max(1, attributes[item].count)).squareRoot()
        for a in attributes[item] {
            for j in posting[a] ?? [] { scores[j] += weight / (ni * Float(max(1, attributes[j].count)).squareRoot()) }
        }
    }
}

/// Precomputed weighted neighbour lists (e.g. random-walk importance neighbours).
public struct NeighborSimilarity: ItemSimilarity {
    let neighbors: [[(item: Int, weight: Float)]]

    /// `neighbors[i]`: item `i`'s neighbours and their weights.
    public init(neighbors: [[(item: Int, weight: Float)]]) { self.neighbors = neighbors }

    public func addScores(of item: Int, weight: Float, into scores: inout [Float]) {
        guard item < neighbors.count else { return }
        for (j, w) in neighbors[item] where j < scores.count { scores[j] += weight * w }
    }
}

/// Dot products of item vectors (e.g. PinSage embeddings), one BLAS gemv per query item.
public struct EmbeddingSimilarity: ItemSimilarity {
    let vectors: [Float]
    let d: Int

    /// `vectors`: `(itemCount + 1) × d` row-major (row `i` is item `i`; zeros where unknown).
    public init(vectors: [Float], d: Int) {
        precondition(d > 0 && vectors.count % d == 0, "vectors must be (items + 1) × d")
        self.vectors = vectors
        self.d = d
    }

    public func addScores(of item: Int, weight: Float, into scores: inout [Float]) {
        let rows = vectors.count / d
        guard item < rows else { return }
        vectors.withUnsafeBufferPointer { z in
            scores.withUnsafeMutableBufferPointer { s in
                BLAS.gemv(
                    .none, m: min(rows, s.count), n: d, alpha: weight, a: z.baseAddress!, lda: d,
                    x: z.baseAddress! + item * d, beta: 1, y: s.baseAddress!)
            }
        }
    }
}

/// Leave-one-out next-item evaluation by full ranking, as the S3-Rec protocol defines it: a
/// user's last item is the test target and the second last the validation target; the input
/// is every item before the target; all items are ranked, the input items removed, ties at the
/// average rank. The query is the user's last input items weighted by the method's
/// `queryWeights(recent:)` (by default the last `recent`, weighted 1, 1/2, 1/3, … from the most
/// recent); an item's score is the weighted sum of its similarity to them.
public struct NextItemFullRanking: Sendable {
    /// Which target is held out.
    public enum Target: String, Sendable { case validation, test }

    public var target: Target
    /// Input items used as the query.
    public var recent: Int
    /// The cut-offs reported.
    public var cutoffs: [Int]

    public init(target: Target = .test, recent: Int = 3, cutoffs: [Int] = [5, 10, 20]) {
        self.target = target
        self.recent = recent
        self.cutoffs = cutoffs
    }

    /// The training prefixes (every item but the last two), for fitting baselines.
    public static func trainingPrefixes(_ sequences: [[Int]]) -> [[Int]] { sequences.map { Array($0.dropLast(2)) } }

    /// Collective: evaluates every method on the users of `sequences` (user `u` on rank
    /// `u mod size`), combining the ranks' sums; the result does not depend on the rank count.
    /// Users with fewer than 3 items are skipped.
    public func evaluate(
        sequences: [[Int]], itemCount: Int, methods: [any ItemSimilarity], comm: Communicator
    ) throws -> [RankAccumulator] {
        var accumulators = methods.map { _ in RankAccumulator(cutoffs: cutoffs) }
        var scores = [Float](repeating: 0, count: itemCount + 1)
        for (u, s) in sequences.enumerated() where u % comm.size == comm.rank && s.count >= 3 {
            let input = Array(s.dropLast(target == .test ? 1 : 2))
            let targetItem = target == .test ? s[s.count - 1] : s[s.count - 2]
            let exclude = Set(input).union([0])
            let newestFirst = Array(input.reversed())
            for (m, method) in methods.enumerated() {
                for i in scores.indices { scores[i] = 0 }
                for (item, weight) in zip(newestFirst, method.queryWeights(recent: recent)) {
                    method.addScores(of: item, weight: weight, into: &scores)
                }
                accumulators[m].add(
                    rank: RankingProtocol.fullRank(scores: scores, target: targetItem, exclude: exclude, ties: .average)
                )
            }
        }
        return try accumulators.map { a in
            var sums = a.sums
            try comm.allreduce(&sums, op: .sum)
            return RankAccumulator(cutoffs: cutoffs, sums: sums)
        }
    }
}

/// Published figures of a dataset's protocol, printed beside ours only for the dataset they
/// belong to (recognised by its file name and size, never assumed).
public enum PublishedFigures {
    /// One published row: the model and its values at the protocol's cut-offs.
    public struct Row: Sendable {
        public var model: String
        /// HR@k and NDCG@k by cut-off k.
        public var hitRate: [Int: Double], ndcg: [Int: Double]
    }

    /// S3-Rec Beauty, full ranking (S3-Rec paper, Table 2; ../shared/data/s3rec-beauty/README.md).
    public static let s3recBeauty: [Row] = [
        Row(
            model: "SASRec (published)", hitRate: [5: 0.0387, 10: 0.0605, 20: 0.0902],
            ndcg: [5: 0.0249, 10: 0.0318, 20: 0.0394]),
        Row(
            model: "S3-Rec (published)", hitRate: [5: 0.0387, 10: 0.0647, 20: 0.0994],
            ndcg: [5: 0.0244, 10: 0.0327, 20: 0.0414]),
    ]

    /// The published full-ranking rows for a sequence file, or [] when it is not a dataset with
    /// published figures: S3-Rec Beauty is `Beauty.txt` with 22,363 users and 12,101 items.
    public static func fullRanking(fileName: String, users: Int, items: Int) -> [Row] {
        fileName == "Beauty.txt" && users == 22_363 && items == 12_101 ? s3recBeauty : []
    }
}

import Foundation
import Linalg

/// A batch of click examples for `CrossMMoEModel`: `count` examples, global indices
/// `firstIndex ..< firstIndex + count`.
public struct ClickBatch<T: Real>: Sendable {
    public var count: Int
    /// Global index of the first example (keys dropout masks).
    public var firstIndex: Int
    /// Embedding rows, (count, fields).
    public var rows: [Int]
    /// Dense features, (count, denseWidth).
    public var dense: [T]
    /// Labels per task, tasks × count, in {0, 1}.
    public var labels: [[T]]
    /// Example weights (count).
    public var weights: [T]
}

/// Deterministic synthetic click data: example i depends only on (seed, i), so any rank can
/// generate any slice. Sparse ids are Zipf over `vocabulary`; each task's label is Bernoulli of
/// a hidden logistic model of the ids and dense features.
public struct SyntheticClicks: Sendable {
    public var fields: Int, denseWidth: Int, tasks: Int, vocabulary: Int, seed: UInt64
    private let zipf: ZipfDistribution

    public init(fields: Int, denseWidth: Int, tasks: Int, vocabulary: Int = 10_000, seed: UInt64 = 7) {
        self.fields = fields
        self.denseWidth = denseWidth
        self.tasks = tasks
        self.vocabulary = vocabulary
        self.seed = seed
        zipf = ZipfDistribution(n: vocabulary, exponent: 1.05)
    }

    /// Hidden weight of id in (field, task), in [−1, 1].
    func weight(field: Int, id: Int, task: Int) -> Double {
        var r = RandomStream(seed: seed ^ 0xA5A5, rank: UInt64(field * 16 + task), index: UInt64(id))
        return r.uniform() * 2 - 1
    }

    /// Examples `range` (global indices), ids hashed into `table`'s rows (salt = field).
    @_specialize(where T == Float)
    public func batch<T: Real>(_ range: Range<Int>, table: EmbeddingTable<T>) -> ClickBatch<T> {
        var rows: [Int] = [], dense: [T] = []
        var labels = [[T]](repeating: [], count: tasks)
        rows.reserveCapacity(range.count * fields)
        for i in range {
            var rng = RandomStream(seed: seed, rank: 1, index: UInt64(i))
            var z = [Double](repeating: 0, count: tasks)
            for f in 0..<fields {
                let id = zipf.sample(&rng)
                rows.append(table.row(forID: Int64(id), salt: f))
                for k in 0..<tasks { z[k] += weight(field: f, id: id, task: k) * 0.6 }
            }
            for j in 0..<denseWidth {
                let x = rng.normal()
                dense.append(T(x))
                for k in 0..<tasks { z[k] += (j % (k + 2) == 0 ? 0.5 : -0.3) * x }
            }
            for k in 0..<tasks { labels[k].append(rng.uniform() < 1 / (1 + Foundation.exp(-z[k])) ? 1 : 0) }
        }
        return ClickBatch(
            count: range.count, firstIndex: range.lowerBound, rows: rows, dense: dense, labels: labels,
            weights: [T](repeating: 1, count: range.count))
    }
}

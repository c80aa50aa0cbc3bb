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

/// Shape of a `CrossMMoEModel`.
public struct CrossMMoEConfig: Sendable, Equatable {
    /// Sparse fields F, each an embedding of `dim` from one shared hashed table of `tableRows`.
    public var fields = 20, dim = 16, tableRows = 100_000
    /// Dense features appended to the embeddings.
    public var denseWidth = 16
    /// DCN-v2 layers and their kind.
    public var crossLayers = 3
    public var crossKind: CrossKind = .fullRank
    /// MMoE: expert count and widths, tower widths (the last is 1: one logit per task), tasks.
    public var experts = 3, expertWidths = [256, 128], towerWidths = [64, 1], tasks = 2
    /// Dropout on the cross network's output (0 = none).
    public var dropout = 0.0
    public var seed: UInt64 = 1

    public init() {}

    /// Width of the cross network's input: F·dim + denseWidth.
    public var inputWidth: Int { fields * dim + denseWidth }
}

/// The ranker architecture used by the trainer tests and `mosaic bench train`:
/// [hashed embeddings ‖ dense] → DCN-v2 cross network → (dropout) → MMoE → one logit per task,
/// trained with per-task weighted BCE.
public final class CrossMMoEModel<T: Real>: TrainableModel {
    public let config: CrossMMoEConfig
    public let parameters: ParameterStore<T>
    public let table: EmbeddingTable<T>
    public let cross: CrossNetwork<T>
    public let dropout: Dropout<T>
    public let mmoe: MMoE<T>
    public var tables: [EmbeddingTable<T>] { [table] }

    public init(_ config: CrossMMoEConfig) {
        self.config = config
        parameters = ParameterStore(seed: config.seed)
        table = EmbeddingTable(name: "ids", rows: config.tableRows, dim: config.dim, seed: config.seed &+ 1)
        cross = CrossNetwork(
            parameters, name: "cross", width: config.inputWidth, layers: config.crossLayers, kind: config.crossKind)
        dropout = Dropout(rate: config.dropout, seed: config.seed &+ 2)
        mmoe = MMoE(
            parameters, name: "mmoe", inputs: config.inputWidth, expertCount: config.experts,
            expertWidths: config.expertWidths, tasks: config.tasks, towerWidths: config.towerWidths)
    }

    /// Per-task logits (count each) for a batch.
    @_specialize(where T == Float)
    public func predict(_ batch: ClickBatch<T>, training: Bool = false, step: Int = 0) -> [[T]] {
        let e = table.forward(batch.rows, fields: config.fields)
        let x0 = Tensor.concat([e, Tensor(rows: batch.count, cols: config.denseWidth, data: batch.dense)])
        var h = cross.forward(x0)
        dropout.isTraining = training
        dropout.step = step
        dropout.firstRow = batch.firstIndex
        h = dropout.forward(h)
        return mmoe.forward(h).map(\.data)
    }

    @_specialize(where T == Float)
    public func lossAndGradients(_ batch: ClickBatch<T>, normalizer: T, step: Int) -> (
        loss: Double, sparse: [SparseRows<T>]
    ) {
        let logits = predict(batch, training: true, step: step)
        var loss = 0.0
        var dOuts: [Tensor<T>] = []
        for k in 0..<config.tasks {
            let (l, g) = Loss.binaryCrossEntropy(
                logits: logits[k], labels: batch.labels[k], weights: batch.weights, normalizer: normalizer)
            loss += Double(l)
            dOuts.append(Tensor(rows: batch.count, cols: 1, data: g))
        }
        var dh = mmoe.backward(dOuts)
        dh = dropout.backward(dh)
        let dx0 = cross.backward(dh)
        let parts = dx0.split([config.fields * config.dim, config.denseWidth])
        return (loss, [table.backward(parts[0])])
    }
}

import Linalg

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

/// The ranker architecture used by the trainer tests and `mosaic-bench train`:
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
        lossAndGradients(batch, normalizer: normalizer, step: step, gradientsReady: { _ in })
    }

    /// Parameter ranges in the order backward finishes them: towers, gates, experts 0…E−1, then
    /// cross layers L−1…0 (computed once).
    private lazy var backwardRanges:
        (towers: Range<Int>, gates: Range<Int>, experts: [Range<Int>], cross: [Range<Int>]) = (
            parameters.range(prefix: "mmoe.tower"), parameters.range(prefix: "mmoe.gate"),
            (0..<config.experts).map { parameters.range(prefix: "mmoe.expert\($0).") },
            (0..<config.crossLayers).map { parameters.range(prefix: "cross.\($0).") }
        )

    /// `lossAndGradients`, reporting each layer's dense gradient range to `gradientsReady` as soon
    /// as backward has finished it (MMoE towers and gates, each expert, each cross layer from the
    /// last): the data-parallel trainer starts exchanging those buckets while backward goes on.
    @_specialize(where T == Float)
    public func lossAndGradients(
        _ batch: ClickBatch<T>, normalizer: T, step: Int, gradientsReady: (Range<Int>) -> Void
    ) -> (loss: Double, sparse: [SparseRows<T>]) {
        let logits = predict(batch, training: true, step: step)
        var loss = 0.0
        var dOuts: [Tensor<T>] = []
        for k in 0..<config.tasks {
            let (l, g) = Loss.binaryCrossEntropy(
                logits: logits[k], labels: batch.labels[k], weights: batch.weights, normalizer: normalizer)
            loss += Double(l)
            dOuts.append(Tensor(rows: batch.count, cols: 1, data: g))
        }
        let ranges = backwardRanges
        var dh = mmoe.backward(dOuts) { part in
            switch part {
            case .towersAndGates:
                gradientsReady(ranges.towers)
                gradientsReady(ranges.gates)
            case .expert(let e): gradientsReady(ranges.experts[e])
            }
        }
        dh = dropout.backward(dh)
        let dx0 = cross.backward(dh) { gradientsReady(ranges.cross[$0]) }
        let parts = dx0.split([config.fields * config.dim, config.denseWidth])
        return (loss, [table.backward(parts[0])])
    }
}

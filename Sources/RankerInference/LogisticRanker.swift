import Layers
import Linalg

/// Logistic regression baseline (one logit per task), the model every report shows the lift
/// against:
///
///     logit_k = b_k + Σ_f w_k[row_f]                                  (sparse fields)
///             + (1/L) Σ_{h ∈ history} w_k[cross(h, candidate)]         (mean-pooled history × candidate)
///             + [dense ‖ content ‖ h̄ ‖ h̄ ⊙ content] · W_k              (dense part)
///
/// With `config.shortLength` = L > 0 the user's last L events (the DIN slots) are mean-pooled
/// two ways, so a linear model can express user–candidate affinity at all (without them a
/// logistic regression has only global weights and ranks a user's candidates by popularity):
/// - hashed crosses of each history pin with the candidate pin (the "wide" cross-product
///   features of Wide & Deep), each weighing 1/L;
/// - h̄, the mean content embedding of those events (hides excluded), and its element-wise
///   product with the candidate's content, which makes the dense part a learned, diagonal
///   inner product between the user's recent interests and the candidate.
///
/// Per-field weights live in a (tableRows, tasks) table, cross weights in a hashed
/// (`crossRows`, tasks) table (both updated sparsely); W and b in the parameter store.
public final class LogisticRanker<T: Real>: RankingModel {
    public let config: RankerConfig
    public let parameters: ParameterStore<T>
    public let table: EmbeddingTable<T>
    /// Hashed history × candidate cross weights (nil without history).
    public let crossTable: EmbeddingTable<T>?
    /// Rows of the cross table: 2^20 (4 MiB per task in Float, plus optimizer state).
    public static var crossRows: Int { 1 << 20 }
    public let linear: Linear<T>?
    public let bias: ParameterView
    public var tables: [EmbeddingTable<T>] { [table] + (crossTable.map { [$0] } ?? []) }

    /// Whether the history features are on (a short sequence is configured).
    public var usesHistory: Bool { config.shortLength > 0 }
    private var usesHistoryContent: Bool { usesHistory && config.contentWidth > 0 }

    public init(_ config: RankerConfig) {
        self.config = config
        parameters = ParameterStore(seed: config.seed)
        let tasks = config.tasks.count
        table = EmbeddingTable(name: "weights", rows: config.tableRows, dim: tasks, std: 0, seed: config.seed &+ 1)
        crossTable =
            config.shortLength > 0
            ? EmbeddingTable(name: "crosses", rows: Self.crossRows, dim: tasks, std: 0, seed: config.seed &+ 3) : nil
        let history = config.shortLength > 0 && config.contentWidth > 0 ? 2 * config.contentWidth : 0
        let width = config.denseWidth + config.contentWidth + history
        linear = width > 0 ? Linear(parameters, name: "lr.dense", inputs: width, outputs: tasks, bias: false) : nil
        bias = parameters.add("lr.bias", shape: [tasks], .zeros)
    }

    /// The table row of the cross (history pin row `h`, candidate row `c`).
    @inline(__always)
    func crossRow(history h: Int, candidate c: Int) -> Int {
        crossTable!.row(forID: Int64(h) << 32 | Int64(c), salt: 1)
    }

    /// The cross rows the batch reads: example i's are `rows[offsets[i] ..< offsets[i + 1]]`,
    /// one per history event, each weighing `weights[i]` = 1/(events).
    private func crossLookups(_ batch: RankerBatch<T>) -> (rows: [Int], weights: [T], offsets: [Int]) {
        let n = batch.count, f = config.fields, l = config.shortLength
        var rows: [Int] = [], weights: [T] = [], offsets = [0]
        guard crossTable != nil, batch.short.mask.count == n * l else {
            return ([], [T](repeating: 0, count: n), [Int](repeating: 0, count: n + 1))
        }
        rows.reserveCapacity(n * l)
        for i in 0..<n {
            let candidate = batch.rows[i * f + config.candidateField]
            for t in 0..<l where batch.short.mask[i * l + t] {
                rows.append(crossRow(history: batch.short.rows[i * l + t], candidate: candidate))
            }
            weights.append(T(1) / T(max(1, rows.count - offsets[i])))
            offsets.append(rows.count)
        }
        return (rows, weights, offsets)
    }

    private func denseInput(_ batch: RankerBatch<T>) -> Tensor<T>? {
        guard linear != nil else { return nil }
        let n = batch.count, cw = config.contentWidth
        var parts: [Tensor<T>] = []
        if config.denseWidth > 0 { parts.append(Tensor(rows: n, cols: config.denseWidth, data: batch.dense)) }
        if cw > 0 { parts.append(Tensor(rows: n, cols: cw, data: batch.content)) }
        if usesHistoryContent {
            let h = batch.historyContent.count == n * cw ? batch.historyContent : [T](repeating: 0, count: n * cw)
            var product = [T](repeating: 0, count: n * cw)
            for i in 0..<(n * cw) { product[i] = h[i] * batch.content[i] }
            parts.append(Tensor(rows: n, cols: cw, data: h))
            parts.append(Tensor(rows: n, cols: cw, data: product))
        }
        return parts.count == 1 ? parts[0] : Tensor.concat(parts)
    }

    @_specialize(where T == Float)
    public func logits(_ batch: RankerBatch<T>, training: Bool, step: Int) -> [[T]] {
        logitsAndLookups(batch).logits
    }

    private func logitsAndLookups(_ batch: RankerBatch<T>) -> (
        logits: [[T]], crosses: (rows: [Int], weights: [T], offsets: [Int])
    ) {
        let n = batch.count, tasks = config.tasks.count, f = config.fields
        let crosses = crossLookups(batch)
        let lin = denseInput(batch).map { linear!.forward($0) }
        let b = parameters.value(bias)
        var out = [[T]](repeating: [T](repeating: 0, count: n), count: tasks)
        for i in 0..<n {
            for k in 0..<tasks {
                var s = b[k]
                for j in 0..<f { s += table.values[batch.rows[i * f + j] * tasks + k] }
                if let crossTable {
                    var c: T = 0
                    for j in crosses.offsets[i]..<crosses.offsets[i + 1] {
                        c += crossTable.values[crosses.rows[j] * tasks + k]
                    }
                    s += crosses.weights[i] * c
                }
                if let lin { s += lin[i, k] }
                out[k][i] = s
            }
        }
        return (out, crosses)
    }

    @_specialize(where T == Float)
    public func lossAndGradients(_ batch: RankerBatch<T>, normalizer: T, step: Int) -> (
        loss: Double, sparse: [SparseRows<T>]
    ) {
        let n = batch.count, tasks = config.tasks.count, f = config.fields
        let (z, crosses) = logitsAndLookups(batch)
        var (loss, g) = multiTaskBCE(z, batch, normalizer: normalizer)
        let db = parameters.grad(bias)
        var dz = Tensor<T>.zeros(n, tasks)
        for k in 0..<tasks { for i in 0..<n { dz[i, k] = g[k][i]; db[k] += g[k][i] } }
        if let linear { _ = linear.backward(dz) }
        // Per-field rows: dL/dw = dz; cross rows: dz / (events); plus per-occurrence L2.
        var fieldGrads = [T](repeating: 0, count: n * f * tasks)
        var crossGrads = [T](repeating: 0, count: crosses.rows.count * tasks)
        for i in 0..<n {
            for j in 0..<f { for k in 0..<tasks { fieldGrads[(i * f + j) * tasks + k] = dz[i, k] } }
            for j in crosses.offsets[i]..<crosses.offsets[i + 1] {
                for k in 0..<tasks { crossGrads[j * tasks + k] = crosses.weights[i] * dz[i, k] }
            }
        }
        if config.embeddingL2 > 0 {
            let lambda = T(config.embeddingL2)
            var reg = 0.0
            func penalize(_ rows: [Int], _ values: [T], _ grads: inout [T]) {
                for (j, r) in rows.enumerated() {
                    for k in 0..<tasks {
                        let v = values[r * tasks + k]
                        reg += Double(v * v)
                        grads[j * tasks + k] += 2 * lambda * v / normalizer
                    }
                }
            }
            penalize(batch.rows, table.values, &fieldGrads)
            if let crossTable { penalize(crosses.rows, crossTable.values, &crossGrads) }
            loss += Double(lambda) * reg / Double(normalizer)
            g = []
        }
        var sparse = [SparseRows(dim: tasks, rows: batch.rows.map(Int64.init), grads: fieldGrads).deduplicated()]
        if crossTable != nil {
            sparse.append(SparseRows(dim: tasks, rows: crosses.rows.map(Int64.init), grads: crossGrads).deduplicated())
        }
        return (loss, sparse)
    }
}

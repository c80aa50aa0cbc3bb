import Layers
import Linalg

/// A batch of ranking examples (user, candidate, context): `count` examples with global
/// indices `firstIndex ..< firstIndex + count` (the global index keys dropout masks, so the
/// masks do not depend on the rank that processes an example).
public struct RankerBatch<T: Real>: Sendable {
    public var count: Int
    public var firstIndex: Int
    /// Embedding-table rows, (count, fields).
    public var rows: [Int]
    /// Dense features, (count, denseWidth).
    public var dense: [T]
    /// Candidate content embeddings, (count, contentWidth).
    public var content: [T]
    /// Logged position bucket per example, in 0..<positionBuckets, or −1 (null). Empty = all null.
    public var positions: [Int]
    /// Labels per task in {0, 1}, tasks × count.
    public var labels: [[T]]
    /// Example weights, count.
    public var weights: [T]
    /// Short (DIN) sequence, (count, shortLength) each: table rows of the events' pins, event
    /// type codes, time-since buckets, and whether the slot holds an event.
    public var short = SequenceSlots()
    /// SIM GSU results, (count, simK) each, same layout.
    public var long = SequenceSlots()
    /// The transformer's last `transformerLength` events, (count, transformerLength) each.
    public var recent = SequenceSlots()
    /// Content embeddings of the `recent` slots' pins, (count·transformerLength, contentWidth),
    /// zeros at padding; filled when `transformerContent`.
    public var recentContent: [T] = []
    /// Mean content embedding of the short sequence's events other than hides, (count,
    /// contentWidth); zeros for an empty history. Filled for the logistic baseline only.
    public var historyContent: [T] = []

    public init(
        count: Int, firstIndex: Int, rows: [Int], dense: [T] = [], content: [T] = [], positions: [Int] = [],
        labels: [[T]], weights: [T]? = nil
    ) {
        self.count = count
        self.firstIndex = firstIndex
        self.rows = rows
        self.dense = dense
        self.content = content
        self.positions = positions
        self.labels = labels
        self.weights = weights ?? [T](repeating: 1, count: count)
    }
}

/// Fixed-length, padded sequence slots of a batch: slot (b, t) at index b·T + t.
public struct SequenceSlots: Sendable {
    public var rows: [Int] = [], types: [Int] = [], buckets: [Int] = []
    public var mask: [Bool] = []
    public init() {}
    public init(rows: [Int], types: [Int], buckets: [Int], mask: [Bool]) {
        self.rows = rows
        self.types = types
        self.buckets = buckets
        self.mask = mask
    }
    /// Appends one example's events (at most `length`, the most recent last), padding to `length`.
    public mutating func append(rows r: [Int], types t: [Int], buckets b: [Int], length: Int) {
        let n = min(length, r.count)
        rows += r.suffix(n); types += t.suffix(n); buckets += b.suffix(n)
        mask += [Bool](repeating: true, count: n)
        let pad = length - n
        rows += [Int](repeating: 0, count: pad); types += [Int](repeating: 0, count: pad)
        buckets += [Int](repeating: 0, count: pad); mask += [Bool](repeating: false, count: pad)
    }
}

/// A ranker the trainer and the scorer can drive: per-task logits for a batch.
public protocol RankingModel<Scalar>: TrainableModel where Batch == RankerBatch<Scalar> {
    associatedtype Scalar
    var config: RankerConfig { get }
    /// Per-task logits (tasks × count). `training` enables dropout and adds the position
    /// tower's logit; inference (training = false) nulls the position.
    func logits(_ batch: RankerBatch<Scalar>, training: Bool, step: Int) -> [[Scalar]]
}

/// Builds the ranker of `config.architecture` in scalar type T.
public func makeRanker<T: Real>(_ config: RankerConfig, as: T.Type = T.self) -> any RankingModel<T> {
    switch config.architecture {
    case .dcnMMoE: return RankerModel<T>(config)
    case .logistic: return LogisticRanker<T>(config)
    }
}

/// Per-task BCE over `logits`, the summed loss and per-task dL/dlogit.
@_specialize(where T == Float)
func multiTaskBCE<T: Real>(_ logits: [[T]], _ batch: RankerBatch<T>, normalizer: T) -> (Double, [[T]]) {
    var loss = 0.0
    var grads: [[T]] = []
    for k in logits.indices {
        let (l, g) = Loss.binaryCrossEntropy(
            logits: logits[k], labels: batch.labels[k], weights: batch.weights, normalizer: normalizer)
        loss += Double(l)
        grads.append(g)
    }
    return (loss, grads)
}

/// The ranker: [embeddings of the F sparse fields ‖ dense ‖ candidate content] (B, inputWidth)
/// → DCN-v2 cross network (full rank or low-rank mixture) → dropout → MMoE with one tower per
/// task → one logit per task; in training a shallow position tower
/// (one-hot position → hidden → ReLU → one logit per task) is added to the logits, so position
/// bias is explained by the tower and not learned by the main network; at inference the
/// position is nulled (the tower is not evaluated).
///
/// Loss: per-task weighted BCE, plus per-occurrence L2 on embedding rows.
public final class RankerModel<T: Real>: RankingModel {
    public let config: RankerConfig
    public let parameters: ParameterStore<T>
    public let table: EmbeddingTable<T>
    public let cross: CrossNetwork<T>
    public let dropout: Dropout<T>
    public let mmoe: MMoE<T>
    public let positionTower: Sequential<T>?
    /// ESU (SIM) and DIN target attention; nil when off.
    public let esu: TargetAttention<T>?, din: TargetAttention<T>?
    /// Transformer over the last `transformerLength` events, the candidate as the final token.
    public let transformer: SequenceTransformer<T>?
    /// contentWidth → dim projection of the pins' content into the transformer's tokens (no bias).
    public let transformerContent: Linear<T>?
    /// Event-type (5, dim) and time-bucket (timeBuckets, dim) encodings added to sequence
    /// events' pin embeddings.
    public let typeEmbedding: ParameterView?, timeEmbedding: ParameterView?
    public var tables: [EmbeddingTable<T>] { [table] }
    private var lastPositionInput = false
    /// Whether this replica adds the whole-table `embeddingDecay` gradient (exactly one rank
    /// must: the trainer sets it on rank 0 only).
    public var addsTableDecay = true

    public init(_ config: RankerConfig) {
        self.config = config
        parameters = ParameterStore(seed: config.seed)
        table = EmbeddingTable(name: "ids", rows: config.tableRows, dim: config.dim, std: 0.01, seed: config.seed &+ 1)
        cross = CrossNetwork(
            parameters, name: "cross", width: config.inputWidth, layers: config.crossLayers, kind: config.crossKind)
        dropout = Dropout(rate: config.dropout, seed: config.seed &+ 2)
        mmoe = MMoE(
            parameters, name: "mmoe", inputs: config.inputWidth, expertCount: config.experts,
            expertWidths: config.expertWidths, tasks: config.tasks.count, towerWidths: config.towerWidths)
        let d = config.dim
        esu =
            config.simK > 0
            ? TargetAttention(
                parameters, name: "esu", queryWidth: d, keyWidth: d, heads: config.simHeads, headWidth: d, outputs: d)
            : nil
        din =
            config.shortLength > 0
            ? TargetAttention(parameters, name: "din", queryWidth: d, keyWidth: d, heads: 1, headWidth: d, outputs: d)
            : nil
        transformer =
            config.transformerLength > 0
            ? SequenceTransformer(
                parameters, name: "transformer", width: d, length: config.transformerLength,
                heads: config.transformerHeads, layers: config.transformerLayers, ffnWidth: 2 * d)
            : nil
        transformerContent =
            config.transformerLength > 0 && config.transformerContent && config.contentWidth > 0
            ? Linear(parameters, name: "transformer.content", inputs: config.contentWidth, outputs: d, bias: false)
            : nil
        if config.usesSequences {
            typeEmbedding = parameters.add(
                "sequence.type", shape: [RankerConfig.eventTypes, d], .normal(std: 0.01))
            timeEmbedding = parameters.add("sequence.time", shape: [config.timeBuckets, d], .normal(std: 0.01))
        } else {
            typeEmbedding = nil
            timeEmbedding = nil
        }
        positionTower =
            config.positionBuckets > 0
            ? .mlp(
                parameters, name: "position",
                widths: [config.positionBuckets, config.positionHidden, config.tasks.count], finalActivation: false)
            : nil
    }

    /// One-hot positions (B, buckets); null rows are zero.
    func positionOneHot(_ batch: RankerBatch<T>) -> Tensor<T> {
        var x = Tensor<T>.zeros(batch.count, config.positionBuckets)
        for (i, p) in batch.positions.enumerated() where p >= 0 {
            precondition(p < config.positionBuckets, "position bucket \(p) outside 0..<\(config.positionBuckets)")
            x[i, p] = 1
        }
        return x
    }

    private var lastKeys: [T] = []

    /// The candidate field's columns of the field embeddings (B, dim): the attention query.
    func candidateEmbedding(_ e: Tensor<T>) -> Tensor<T> {
        let d = config.dim, f = config.candidateField, w = e.cols
        var q = [T].init(repeating: 0, count: e.rows * d)
        for i in 0..<e.rows { for c in 0..<d { q[i * d + c] = e.data[i * w + f * d + c] } }
        return Tensor(rows: e.rows, cols: d, data: q)
    }

    /// Sequence encodings (slots, dim): pin embedding + type + time bucket (unless `time` is
    /// false); zero when masked. Also kept in `lastKeys` (they are both keys and values of the
    /// attention).
    func sequenceKeys(_ s: SequenceSlots, _ slots: Int, time: Bool = true) -> [T] {
        precondition(
            s.rows.count == slots && s.mask.count == slots, "sequence slots: \(s.rows.count), expected \(slots)")
        let d = config.dim
        var k = [T](repeating: 0, count: slots * d)
        let te = parameters.value(typeEmbedding!), tb = parameters.value(timeEmbedding!)
        table.values.withUnsafeBufferPointer { v in
            for j in 0..<slots where s.mask[j] {
                precondition(s.types[j] >= 0 && s.types[j] < RankerConfig.eventTypes, "event type \(s.types[j])")
                precondition(s.buckets[j] >= 0 && s.buckets[j] < config.timeBuckets, "time bucket \(s.buckets[j])")
                let r = s.rows[j] * d, t = s.types[j] * d, b = s.buckets[j] * d
                if time {
                    for c in 0..<d { k[j * d + c] = v[r + c] + te[t + c] + tb[b + c] }
                } else {
                    for c in 0..<d { k[j * d + c] = v[r + c] + te[t + c] }
                }
            }
        }
        lastKeys = k
        return k
    }

    /// Inference uses `TargetAttention.forwardShared` over distinct events (same result as the
    /// per-slot path up to float rounding; much less work when candidates share a history).
    public var sharedInference = true

    /// Distinct events of the slots, encoded (U, dim), and each slot's event (−1 = padding).
    func distinctEvents(_ s: SequenceSlots) -> ([T], [Int]) {
        let d = config.dim, tb = config.timeBuckets
        var seen: [Int: Int] = [:]
        seen.reserveCapacity(256)
        var index = [Int](repeating: -1, count: s.mask.count)
        var events: [T] = []
        let te = parameters.value(typeEmbedding!), tm = parameters.value(timeEmbedding!)
        table.values.withUnsafeBufferPointer { v in
            for j in 0..<s.mask.count where s.mask[j] {
                let key = (s.rows[j] * RankerConfig.eventTypes + s.types[j]) * tb + s.buckets[j]
                if let u = seen[key] {
                    index[j] = u
                    continue
                }
                let u = seen.count
                seen[key] = u
                index[j] = u
                let r = s.rows[j] * d, t = s.types[j] * d, b = s.buckets[j] * d
                for c in 0..<d { events.append(v[r + c] + te[t + c] + tm[b + c]) }
            }
        }
        return (events, index)
    }

    /// Gradient of sequence encodings (slots, dim) → type/time parameters, and pin rows
    /// appended to `rows`/`grads` (sparse).
    func sequenceBackward(_ s: SequenceSlots, _ g: [T], rows: inout [Int64], grads: inout [T], time: Bool = true) {
        let d = config.dim
        let te = parameters.grad(typeEmbedding!), tb = parameters.grad(timeEmbedding!)
        for j in 0..<s.mask.count where s.mask[j] {
            rows.append(Int64(s.rows[j]))
            for c in 0..<d {
                let v = g[j * d + c]
                te[s.types[j] * d + c] += v
                if time { tb[s.buckets[j] * d + c] += v }
                grads.append(v)
            }
        }
    }

    /// The position tower's logits per task (tasks × count) for the batch's logged positions:
    /// what training adds to the main logits (zero without a tower).
    public func positionLogits(_ batch: RankerBatch<T>) -> [[T]] {
        let tasks = config.tasks.count
        guard let positionTower, !batch.positions.isEmpty else {
            return [[T]](repeating: [T](repeating: 0, count: batch.count), count: tasks)
        }
        let p = positionTower.forward(positionOneHot(batch))
        return (0..<tasks).map { k in (0..<batch.count).map { p[$0, k] } }
    }

    @_specialize(where T == Float)
    public func logits(_ batch: RankerBatch<T>, training: Bool, step: Int) -> [[T]] {
        let n = batch.count
        let e = table.forward(batch.rows, fields: config.fields)
        var parts = [e]
        if config.denseWidth > 0 { parts.append(Tensor(rows: n, cols: config.denseWidth, data: batch.dense)) }
        if config.contentWidth > 0 { parts.append(Tensor(rows: n, cols: config.contentWidth, data: batch.content)) }
        if !training, sharedInference, esu != nil || din != nil {
            // Serving path: distinct (pin, type, time bucket) events encoded and projected once.
            let query = candidateEmbedding(e)
            for (attention, slots, length) in [(esu, batch.long, config.simK), (din, batch.short, config.shortLength)] {
                guard let attention else { continue }
                let (events, index) = distinctEvents(slots)
                parts.append(attention.forwardShared(query: query, events: events, index: index, length: length))
            }
        } else if esu != nil || din != nil {
            let query = candidateEmbedding(e)
            if let esu {
                parts.append(
                    esu.forward(
                        query: query, keys: sequenceKeys(batch.long, n * config.simK), values: lastKeys,
                        mask: batch.long.mask, length: config.simK))
            }
            if let din {
                parts.append(
                    din.forward(
                        query: query, keys: sequenceKeys(batch.short, n * config.shortLength), values: lastKeys,
                        mask: batch.short.mask, length: config.shortLength))
            }
        }
        if let transformer {
            let l = config.transformerLength
            var events = sequenceKeys(batch.recent, n * l, time: config.transformerTime)
            var candidate = candidateEmbedding(e)
            if let transformerContent {
                // Events' and candidates' content stacked: one projection (B·L + B, w) → (·, dim).
                let w = config.contentWidth, d = config.dim
                precondition(
                    batch.recentContent.count == n * l * w, "transformer: recent content missing from the batch")
                let p = transformerContent.forward(
                    Tensor(rows: n * l + n, cols: w, data: batch.recentContent + batch.content)
                ).data
                for j in 0..<n * l * d { events[j] += p[j] }
                for j in 0..<n * d { candidate.data[j] += p[n * l * d + j] }
            }
            parts.append(transformer.forward(events: events, mask: batch.recent.mask, candidate: candidate))
        }
        let x0 = parts.count == 1 ? e : Tensor.concat(parts)
        var h = cross.forward(x0)
        dropout.isTraining = training
        dropout.step = step
        dropout.firstRow = batch.firstIndex
        h = dropout.forward(h)
        var out = mmoe.forward(h).map(\.data)
        lastPositionInput = false
        if training, let positionTower, !batch.positions.isEmpty {
            let p = positionTower.forward(positionOneHot(batch))
            for k in out.indices { for i in 0..<n { out[k][i] += p[i, k] } }
            lastPositionInput = true
        }
        return out
    }

    @_specialize(where T == Float)
    public func lossAndGradients(_ batch: RankerBatch<T>, normalizer: T, step: Int) -> (
        loss: Double, sparse: [SparseRows<T>]
    ) {
        let n = batch.count, tasks = config.tasks.count
        let z = logits(batch, training: true, step: step)
        var (loss, g) = multiTaskBCE(z, batch, normalizer: normalizer)
        if lastPositionInput, let positionTower {
            var dp = Tensor<T>.zeros(n, tasks)
            for k in 0..<tasks { for i in 0..<n { dp[i, k] = g[k][i] } }
            _ = positionTower.backward(dp)
        }
        var dh = mmoe.backward(g.map { Tensor(rows: n, cols: 1, data: $0) })
        dh = dropout.backward(dh)
        let dx0 = cross.backward(dh)
        var widths = [config.fields * config.dim]
        if config.denseWidth > 0 { widths.append(config.denseWidth) }
        if config.contentWidth > 0 { widths.append(config.contentWidth) }
        if esu != nil { widths.append(config.dim) }
        if din != nil { widths.append(config.dim) }
        if transformer != nil { widths.append(config.dim) }
        let pieces = widths.count == 1 ? [dx0] : dx0.split(widths)
        var de = pieces[0]
        var extraRows: [Int64] = [], extraGrads: [T] = []
        var next = pieces.count - (esu != nil ? 1 : 0) - (din != nil ? 1 : 0) - (transformer != nil ? 1 : 0)
        for (attention, slots) in [(esu, batch.long), (din, batch.short)] {
            guard let attention else { continue }
            let (dq, dk, dv) = attention.backward(pieces[next])
            next += 1
            var dkv = dk
            for i in dkv.indices { dkv[i] += dv[i] }
            sequenceBackward(slots, dkv, rows: &extraRows, grads: &extraGrads)
            // The query is the candidate field's embedding.
            let d = config.dim, f = config.candidateField, w = de.cols
            for i in 0..<n { for c in 0..<d { de.data[i * w + f * d + c] += dq.data[i * d + c] } }
        }
        if let transformer {
            let (dEvents, dCandidate) = transformer.backward(pieces[next])
            if let transformerContent {
                let rows = n * config.transformerLength + n
                _ = transformerContent.backward(Tensor(rows: rows, cols: config.dim, data: dEvents + dCandidate.data))
            }
            sequenceBackward(
                batch.recent, dEvents, rows: &extraRows, grads: &extraGrads, time: config.transformerTime)
            let d = config.dim, f = config.candidateField, w = de.cols
            for i in 0..<n { for c in 0..<d { de.data[i * w + f * d + c] += dCandidate.data[i * d + c] } }
        }
        if config.embeddingL2 > 0 {
            // L = λ·Σ‖e‖²/normalizer over looked-up rows; dL/de = 2λ·e/normalizer.
            let lambda = T(config.embeddingL2)
            var reg = 0.0
            let vals = table.values
            for (j, r) in batch.rows.enumerated() {
                for c in 0..<config.dim {
                    let v = vals[r * config.dim + c]
                    reg += Double(v * v)
                    de.data[j * config.dim + c] += 2 * lambda * v / normalizer
                }
            }
            loss += Double(lambda) * reg / Double(normalizer)
        }
        var sparse = table.backward(de)
        if config.embeddingDecay > 0, addsTableDecay {
            let lambda = T(config.embeddingDecay)
            var reg = 0.0
            for v in table.values { reg += Double(v * v) }
            loss += Double(lambda) / 2 * reg
            extraRows += (0..<Int64(table.rows)).map { $0 }
            extraGrads += table.values.map { lambda * $0 }
        }
        if !extraRows.isEmpty {
            sparse = SparseRows(dim: config.dim, rows: sparse.rows + extraRows, grads: sparse.grads + extraGrads)
                .deduplicated()
        }
        return (loss, [sparse])
    }
}

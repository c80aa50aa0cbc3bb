import Artifacts
import Collective
import Foundation
import Graph
import Learning
import Linalg

/// The computation graph of PinSage for a set of target pins (K layers): level K holds the
/// targets, level k − 1 the nodes of level k and their top-T neighbours. `content` is the
/// input features of level 0, (|level 0|, dIn). For k ≥ 1, `selfIndex[k]` (|level k|) and
/// `neighborIndex[k]` (|level k|·T) index rows of level k − 1; `weights[k]` (|level k|·T).
public struct ComputationGraph: Sendable {
    public var levels: [[Int64]]
    public var content: [Float]
    public var selfIndex: [[Int]]
    public var neighborIndex: [[Int]]
    public var weights: [[Float]]
    public var t: Int

    /// Collective: fetches neighbour lists (K times) and content (once) from the owners of
    /// the nodes. `targets` must be unique. Every rank must call it the same number of times.
    public static func build(targets: [Int64], layers k: Int, store: NodeStore) throws -> ComputationGraph {
        let t = store.t
        var levels = [[Int64]](repeating: [], count: k + 1)
        var selfIndex = [[Int]](repeating: [], count: k + 1)
        var neighborIndex = [[Int]](repeating: [], count: k + 1)
        var weights = [[Float]](repeating: [], count: k + 1)
        levels[k] = targets
        var fetched: [(ids: [Int64], weights: [Float])] = Array(repeating: ([], []), count: k + 1)
        for level in stride(from: k, to: 0, by: -1) {
            let nodes = levels[level]
            let (nid, nw) = try store.fetchNeighbors(nodes)
            fetched[level] = (nid, nw)
            var below = nodes
            var seen = Set(nodes)
            var extra = Set<Int64>()
            for id in nid where id >= 0 && !seen.contains(id) { extra.insert(id) }
            below += extra.sorted()
            seen.formUnion(extra)
            levels[level - 1] = below
        }
        for level in stride(from: k, to: 0, by: -1) {
            var index: [Int64: Int] = [:]
            for (r, id) in levels[level - 1].enumerated() { index[id] = r }
            let nodes = levels[level]
            selfIndex[level] = nodes.map { index[$0]! }
            let (nid, nw) = fetched[level]
            neighborIndex[level] = (0..<nodes.count * t).map { nid[$0] >= 0 ? index[nid[$0]]! : index[nodes[$0 / t]]! }
            weights[level] = (0..<nodes.count * t).map { nid[$0] >= 0 ? nw[$0] : 0 }
        }
        let content = try store.fetchContent(levels[0])
        return ComputationGraph(
            levels: levels, content: content, selfIndex: selfIndex, neighborIndex: neighborIndex, weights: weights, t: t
        )
    }
}

/// Sizes of a PinSage model.
public struct PinSageConfig: Sendable, Equatable {
    /// Input (content) width.
    public var dIn: Int
    /// Hidden width of the neighbour transform Q and output width of every layer.
    public var dHidden: Int
    public var dOut: Int
    /// Number of convolution layers K.
    public var layers: Int
    /// Margin of the max-margin loss.
    public var margin: Double
    /// Width of the learnable id embedding appended to the content (0: none) and rows of its
    /// hashed table.
    public var idDim: Int
    public var idRows: Int
    /// The paper's final dense layers G2·ReLU(G1·z) + L2 normalisation after the last
    /// convolution (`PinSageOutput`, hidden width dHidden); without them every output
    /// coordinate is ≥ 0 (the convolution ends with a ReLU).
    public var outputLayer: Bool
    /// 0: max-margin loss against the in-batch negatives (the paper's). > 0: sampled softmax
    /// over the micro-batch's positives instead, logits = cosine / temperature, with the logQ
    /// correction of the positives' sampling probabilities (`PinSageBatch.positiveLogQ`).
    /// Hard negatives always use the max-margin term.
    public var softmaxTemperature: Double

    public init(
        dIn: Int, dHidden: Int = 64, dOut: Int = 64, layers: Int = 2, margin: Double = 0.2, idDim: Int = 0,
        idRows: Int = 1 << 16, outputLayer: Bool = false, softmaxTemperature: Double = 0
    ) {
        self.outputLayer = outputLayer
        self.softmaxTemperature = softmaxTemperature
        self.dIn = dIn
        self.dHidden = dHidden
        self.dOut = dOut
        self.layers = layers
        self.margin = margin
        self.idDim = idDim
        self.idRows = idRows
    }

    /// Width of the first layer's input: content plus id embedding.
    public var inputWidth: Int { dIn + idDim }
}

/// PinSage: K `PinSageConv` layers over importance neighbours; output rows L2-normalised.
public final class PinSageModel<T: Real> {
    public let config: PinSageConfig
    public let parameters: ParameterStore<T>
    public let convs: [PinSageConv<T>]
    /// Final dense layers (nil unless `config.outputLayer`).
    public let output: PinSageOutput<T>?
    /// The hashed id embedding (nil when `config.idDim` is 0), updated sparsely by the trainer.
    public let idTable: EmbeddingTable<T>?
    private var idGradient: SparseRows<T>? = nil

    public init(config: PinSageConfig, seed: UInt64 = 1) {
        self.config = config
        parameters = ParameterStore<T>(seed: seed)
        var convs: [PinSageConv<T>] = []
        for k in 0..<config.layers {
            convs.append(
                PinSageConv(
                    parameters, name: "conv\(k)", dIn: k == 0 ? config.inputWidth : config.dOut,
                    dHidden: config.dHidden, dOut: config.dOut))
        }
        self.convs = convs
        output =
            config.outputLayer
            ? PinSageOutput(parameters, name: "out", dIn: config.dOut, dHidden: config.dHidden, dOut: config.dOut) : nil
        idTable =
            config.idDim > 0
            ? EmbeddingTable(name: "pin_id", rows: config.idRows, dim: config.idDim, std: 0.1, seed: seed &+ 1) : nil
    }

    /// Layer-0 input of `ids` with content rows `content` ((n, dIn) Float): content, then the
    /// id embedding when the model has one. (n, inputWidth).
    @_specialize(where T == Float)
    public func input(ids: [Int64], content: [Float]) -> Tensor<T> {
        let c = Tensor<T>(rows: ids.count, cols: config.dIn, data: content.map { T($0) })
        guard let idTable else { return c }
        return Tensor.concat([c, idTable.forward(ids.map { idTable.row(forID: $0) }, fields: 1)])
    }

    /// Embeddings of level K of `graph`, (|targets|, dOut).
    @_specialize(where T == Float)
    public func forward(_ graph: ComputationGraph) -> Tensor<T> {
        var h = input(ids: graph.levels[0], content: graph.content)
        for (k, conv) in convs.enumerated() {
            let level = k + 1
            h = conv.forward(
                selfX: Self.gather(h, graph.selfIndex[level]), neighbors: Self.gather(h, graph.neighborIndex[level]),
                weights: graph.weights[level].map { T($0) }, t: graph.t)
        }
        return output?.forward(h) ?? h
    }

    /// Backward from dL/d(level-K embeddings); adds parameter gradients to the store.
    @_specialize(where T == Float)
    public func backward(_ dz: Tensor<T>, graph: ComputationGraph) {
        var d = output?.backward(dz) ?? dz
        for k in stride(from: convs.count - 1, through: 0, by: -1) {
            let level = k + 1
            let (ds, dn) = convs[k].backward(d)
            if k == 0 && idTable == nil { break }
            var below = Tensor<T>.zeros(graph.levels[level - 1].count, ds.cols)
            Self.scatterAdd(ds, graph.selfIndex[level], into: &below)
            Self.scatterAdd(dn, graph.neighborIndex[level], into: &below)
            d = below
        }
        if let idTable {
            // d is dL/d(layer-0 input) (|level 0|, dIn + idDim): the id columns go to the table.
            let g = idTable.backward(d.split([config.dIn, config.idDim])[1])
            if var acc = idGradient {
                acc.rows += g.rows
                acc.grads += g.grads
                idGradient = acc
            } else {
                idGradient = g
            }
        }
    }

    @_specialize(where T == Float)
    static func gather(_ h: Tensor<T>, _ rows: [Int]) -> Tensor<T> {
        let c = h.cols
        var out = [T]()
        out.reserveCapacity(rows.count * c)
        for r in rows { out.append(contentsOf: h.data[r * c..<(r + 1) * c]) }
        return Tensor(rows: rows.count, cols: c, data: out)
    }

    @_specialize(where T == Float)
    static func scatterAdd(_ g: Tensor<T>, _ rows: [Int], into h: inout Tensor<T>) {
        let c = g.cols
        for (i, r) in rows.enumerated() { for j in 0..<c { h.data[r * c + j] += g.data[i * c + j] } }
    }

    /// Max-margin loss of one micro-batch: query i's positive is pin i of `positives`; the
    /// other positives of the micro-batch are its negatives. `zq`, `zp` (M, d). Returns the
    /// loss (÷ normalizer) and gradients.
    @_specialize(where T == Float)
    public static func maxMarginLoss(zq: Tensor<T>, zp: Tensor<T>, margin: T, normalizer: T) -> (
        loss: T, dq: Tensor<T>, dp: Tensor<T>
    ) {
        let m = zq.rows, d = zq.cols
        var scores = Tensor<T>.zeros(m, m)
        for i in 0..<m {
            for j in 0..<m {
                var s: T = 0; for c in 0..<d { s += zq.data[i * d + c] * zp.data[j * d + c] }; scores[i, j] = s
            }
        }
        let pos = (0..<m).map { scores[$0, $0] }
        var neg = Tensor<T>.zeros(m, max(1, m - 1))
        for i in 0..<m { var c = 0; for j in 0..<m where j != i { neg[i, c] = scores[i, j]; c += 1 } }
        let (loss, dpos, dneg) = Loss.hinge(positive: pos, negative: neg, margin: margin, normalizer: normalizer)
        var ds = Tensor<T>.zeros(m, m)
        for i in 0..<m {
            ds[i, i] = dpos[i]
            var c = 0
            for j in 0..<m where j != i { ds[i, j] = dneg[i, c]; c += 1 }
        }
        var dq = Tensor<T>.zeros(m, d), dp = Tensor<T>.zeros(m, d)
        for i in 0..<m {
            for j in 0..<m where ds[i, j] != 0 {
                let g = ds[i, j]
                for c in 0..<d {
                    dq.data[i * d + c] += g * zp.data[j * d + c]
                    dp.data[j * d + c] += g * zq.data[i * d + c]
                }
            }
        }
        return (loss, dq, dp)
    }

    /// In-batch sampled softmax: query i's candidates are the M positives, logits
    /// zq_i·zp_j / temperature − logQ_j (logQ empty: no correction); candidate j is masked for
    /// query i when it is the same pin as i's positive or as query i (rows `positiveRows`,
    /// `queryRows` of the same graph level). Returns the loss (÷ normalizer) and gradients.
    @_specialize(where T == Float)
    public static func softmaxLoss(
        zq: Tensor<T>, zp: Tensor<T>, queryRows: [Int], positiveRows: [Int], logQ: [T], temperature: T,
        normalizer: T
    ) -> (loss: T, dq: Tensor<T>, dp: Tensor<T>) {
        let m = zq.rows, d = zq.cols
        precondition(logQ.isEmpty || logQ.count == m)
        // Column 0: the positive; columns 1 ..< m: the other positives in order.
        var logits = Tensor<T>.zeros(m, m), lq = Tensor<T>.zeros(m, m)
        var column = [[Int]](repeating: [], count: m)
        for i in 0..<m {
            column[i] = [i] + (0..<m).filter { $0 != i }
            for (c, j) in column[i].enumerated() {
                var s: T = 0
                for k in 0..<d { s += zq.data[i * d + k] * zp.data[j * d + k] }
                logits[i, c] = s / temperature
                lq[i, c] = logQ.isEmpty ? 0 : logQ[j]
                if c > 0 && (positiveRows[j] == positiveRows[i] || positiveRows[j] == queryRows[i]) {
                    lq[i, c] = 1e4  // masked: exp(z − 1e4) underflows to 0
                }
            }
        }
        let (loss, dl) = Loss.sampledSoftmax(logits: logits, logQ: lq, normalizer: normalizer)
        var dq = Tensor<T>.zeros(m, d), dp = Tensor<T>.zeros(m, d)
        for i in 0..<m {
            for (c, j) in column[i].enumerated() where dl[i, c] != 0 {
                let g = dl[i, c] / temperature
                for k in 0..<d {
                    dq.data[i * d + k] += g * zp.data[j * d + k]
                    dp.data[j * d + k] += g * zq.data[i * d + k]
                }
            }
        }
        return (loss, dq, dp)
    }

    /// Hard-negative hinge: Σ_i max(0, margin − zq_i·zp_i + zq_i·zh_i) / normalizer over rows
    /// (M, d) each. Returns the loss and the gradients for zq, zp, zh.
    @_specialize(where T == Float)
    public static func hardNegativeLoss(zq: Tensor<T>, zp: Tensor<T>, zh: Tensor<T>, margin: T, normalizer: T) -> (
        loss: T, dq: Tensor<T>, dp: Tensor<T>, dh: Tensor<T>
    ) {
        let m = zq.rows, d = zq.cols
        var loss: T = 0
        var dq = Tensor<T>.zeros(m, d), dp = Tensor<T>.zeros(m, d), dh = Tensor<T>.zeros(m, d)
        for i in 0..<m {
            var sp: T = 0, sh: T = 0
            for c in 0..<d {
                sp += zq.data[i * d + c] * zp.data[i * d + c]; sh += zq.data[i * d + c] * zh.data[i * d + c]
            }
            let v = margin - sp + sh
            if v <= 0 { continue }
            loss += v
            for c in 0..<d {
                dq.data[i * d + c] = (zh.data[i * d + c] - zp.data[i * d + c]) / normalizer
                dp.data[i * d + c] = -zq.data[i * d + c] / normalizer
                dh.data[i * d + c] = zq.data[i * d + c] / normalizer
            }
        }
        return (loss / normalizer, dq, dp, dh)
    }

    /// Saves the parameters with the config and `version` as attributes.
    public func save(path: String, version: String) throws {
        let f = try H5File(path: path, mode: .create)
        try f.root.write("parameters", parameters.valuesArray().map { Double($0) }, shape: [parameters.count])
        try f.root.setAttribute("d_in", Int64(config.dIn))
        try f.root.setAttribute("d_hidden", Int64(config.dHidden))
        try f.root.setAttribute("d_out", Int64(config.dOut))
        try f.root.setAttribute("layers", Int64(config.layers))
        try f.root.setAttribute("margin", config.margin)
        try f.root.setAttribute("model_version", version)
        try f.root.setAttribute("id_dim", Int64(config.idDim))
        try f.root.setAttribute("id_rows", Int64(config.idRows))
        try f.root.setAttribute("output_layer", Int64(config.outputLayer ? 1 : 0))
        if let idTable {
            try f.root.write("id_embedding", idTable.values.map { Double($0) }, shape: [idTable.rows, idTable.dim])
        }
        try f.flush()
    }

    /// Loads a model saved by `save`; returns it with its version.
    public static func load(path: String) throws -> (PinSageModel, String) {
        let f = try H5File(path: path, mode: .read)
        let outputLayer = f.root.hasAttribute("output_layer") ? try f.root.intAttribute("output_layer") != 0 : false
        let config = PinSageConfig(
            dIn: Int(try f.root.intAttribute("d_in")), dHidden: Int(try f.root.intAttribute("d_hidden")),
            dOut: Int(try f.root.intAttribute("d_out")), layers: Int(try f.root.intAttribute("layers")),
            margin: try f.root.doubleAttribute("margin"),
            idDim: Int(try f.root.intAttribute("id_dim")), idRows: Int(try f.root.intAttribute("id_rows")),
            outputLayer: outputLayer)
        let model = PinSageModel(config: config)
        if let table = model.idTable {
            let v = try f.root.read("id_embedding", as: Double.self)
            guard v.count == table.values.count else {
                throw ArtifactError(
                    file: path, object: "/id_embedding", message: "\(v.count) values, expected \(table.values.count)")
            }
            table.values = v.map { T($0) }
        }
        let values = try f.root.read("parameters", as: Double.self)
        guard values.count == model.parameters.count else {
            throw ArtifactError(
                file: path, object: "/parameters",
                message: "\(values.count) values, the model has \(model.parameters.count)")
        }
        model.parameters.setValues(values.map { T($0) })
        return (model, try f.root.stringAttribute("model_version"))
    }
}

/// One global training step's share of this rank: micro-batches `i ≡ rank (mod size)`.
public struct PinSageBatch {
    public var graphs: [ComputationGraph] = []
    /// Per micro-batch: rows (in level K) of the M queries and of their M positives.
    public var queryRows: [[Int]] = []
    public var positiveRows: [[Int]] = []
    /// Per micro-batch: (query index within the micro-batch, row of its hard negative) pairs.
    public var hardNegatives: [[(query: Int, row: Int)]] = []
    /// Per micro-batch: log of each positive's probability of being drawn as a positive (M)
    /// (softmax loss only; empty = no correction).
    public var positiveLogQ: [[Float]] = []
    public init() {}
}

extension PinSageModel: TrainableModel {
    public var tables: [EmbeddingTable<T>] { idTable.map { [$0] } ?? [] }

    @_specialize(where T == Float)
    public func lossAndGradients(_ batch: PinSageBatch, normalizer: T, step: Int) -> (
        loss: Double, sparse: [SparseRows<T>]
    ) {
        var total = 0.0
        idGradient = nil
        for (g, graph) in batch.graphs.enumerated() {
            let z = forward(graph)
            let zq = Self.gather(z, batch.queryRows[g]), zp = Self.gather(z, batch.positiveRows[g])
            let (loss, dq, dp) =
                config.softmaxTemperature > 0
                ? Self.softmaxLoss(
                    zq: zq, zp: zp, queryRows: batch.queryRows[g], positiveRows: batch.positiveRows[g],
                    logQ: g < batch.positiveLogQ.count ? batch.positiveLogQ[g].map { T($0) } : [],
                    temperature: T(config.softmaxTemperature), normalizer: normalizer)
                : Self.maxMarginLoss(zq: zq, zp: zp, margin: T(config.margin), normalizer: normalizer)
            total += Double(loss)
            var dz = Tensor<T>.zeros(z.rows, z.cols)
            Self.scatterAdd(dq, batch.queryRows[g], into: &dz)
            Self.scatterAdd(dp, batch.positiveRows[g], into: &dz)
            if g < batch.hardNegatives.count, !batch.hardNegatives[g].isEmpty {
                let hard = batch.hardNegatives[g]
                let qRows = hard.map { batch.queryRows[g][$0.query] },
                    pRows = hard.map { batch.positiveRows[g][$0.query] }, hRows = hard.map(\.row)
                let (hl, hq, hp, hh) = Self.hardNegativeLoss(
                    zq: Self.gather(z, qRows), zp: Self.gather(z, pRows), zh: Self.gather(z, hRows),
                    margin: T(config.margin), normalizer: normalizer)
                total += Double(hl)
                Self.scatterAdd(hq, qRows, into: &dz)
                Self.scatterAdd(hp, pRows, into: &dz)
                Self.scatterAdd(hh, hRows, into: &dz)
            }
            backward(dz, graph: graph)
        }
        guard let idTable else { return (total, []) }
        let g = idGradient?.deduplicated() ?? SparseRows<T>(dim: idTable.dim)
        idGradient = nil
        return (total, [g])
    }
}

/// Training data for PinSage: positive pairs (query, a pin drawn by weight from its importance
/// neighbours — a walk co-visit — or, with probability `sequenceProbability`, from its sequence
/// neighbours — a save right before or after it), in micro-batches of M whose other positives
/// are the negatives. Query candidates are the pins with importance or sequence neighbours.
///
/// At construction (collective, once) every candidate gets a fixed key SplitMix64(seed, pin id)
/// and is routed to the rank owning that key's range of [0, 2⁶⁴); each rank sorts its range, so
/// the global order by (key, id) — and with it a candidate's global index — does not depend on
/// the rank count. The queries of micro-batch i of step s are M distinct global indices drawn
/// from the stream (seed, s, i) (Floyd's algorithm, O(M)), resolved to pin ids by one
/// alltoallv to the ranks holding those indices: O(batch) per step, never a scan of the
/// candidates. Micro-batch i runs on rank i mod size, so the summed gradient is the same for
/// any rank count (up to float summation order). Memory is proportional to the shard.
public struct PinSageSampler {
    /// This rank's pins that have at least one importance (or sequence) neighbour.
    public let localCandidates: [Int64]
    /// Candidates over all ranks.
    public let candidateCount: Int
    /// This rank's range of the global candidate order (ids sorted by (key, id)) and the
    /// global index of its first entry; `offsets` (size + 1) the first global index per rank.
    let directory: [Int64]
    let offsets: [Int]
    public let microBatches: Int
    public let microBatchSize: Int
    public let seed: UInt64
    /// Hard negatives (curriculum) ramp in over `hardRampSteps` steps (0 disables them). With
    /// the walks' personalised-PageRank band (`store.h` > 0), at progress f = min(1, s / ramp) a
    /// query gets each of its `hardPerQuery` hard negatives with probability f, drawn uniformly
    /// from the band positions ⌊(1 − f)·n/2⌋ ..< n of its n band pins (hardest first): early
    /// negatives come from the less visited half, later ones from the whole band — harder over
    /// training. Without a band, one hard negative with probability f: a pin two walk-hops away
    /// (a neighbour of one of the query's neighbours) that is neither the query nor among its
    /// top-T neighbours.
    public var hardRampSteps = 0
    /// Hard negatives per query at the end of the ramp (band only).
    public var hardPerQuery = 1
    /// Probability that a query's positive comes from its sequence neighbours (when it has
    /// any; always when it has no importance neighbours). 0: walk co-visits only.
    public var sequenceProbability = 0.0
    /// Per local pin (rows of `store.ids`): its probability of being drawn as a positive (set
    /// by `preparePositiveProbabilities`; empty = the batches carry no logQ).
    var positiveProbability: [Float] = []
    /// Whether `preparePositiveProbabilities` ran (the same on every rank).
    public private(set) var withLogQ = false

    /// Collective: builds the global candidate order (see the type's documentation).
    public init(store: NodeStore, microBatches: Int, microBatchSize: Int, seed: UInt64) throws {
        var mine = [Int64]()
        for (r, id) in store.ids.enumerated()
        where store.neighborIDs[r * store.t] >= 0 || (store.s > 0 && store.sequenceIDs[r * store.s] >= 0) {
            mine.append(id)
        }
        localCandidates = mine
        let comm = store.comm, p = comm.size
        let base = Self.mix(seed ^ 0x5851_F42D_4C95_7F2D)
        let keys = mine.map { Self.mix(base ^ UInt64(bitPattern: $0)) }
        // Rank r holds the keys in [r·2⁶⁴/p, (r+1)·2⁶⁴/p).
        let dest = keys.map { Int(($0 >> 32) &* UInt64(p) >> 32) }
        let (rIDs, rKeys) = try NodeStore.routeRows(
            mine, keys.map { Int64(bitPattern: $0) }, width: 1, dest: dest, comm: comm)
        let order = rIDs.indices.sorted {
            let a = UInt64(bitPattern: rKeys[$0]), b = UInt64(bitPattern: rKeys[$1])
            return a != b ? a < b : rIDs[$0] < rIDs[$1]
        }
        directory = order.map { rIDs[$0] }
        let counts = p == 1 ? [directory.count] : try comm.allgather([directory.count])
        var offsets = [0]
        for c in counts { offsets.append(offsets.last! + c) }
        self.offsets = offsets
        candidateCount = offsets.last!
        self.microBatches = microBatches
        self.microBatchSize = microBatchSize
        self.seed = seed
    }

    /// Collective: every pin's probability of being drawn as a positive under the current
    /// `sequenceProbability` — Σ over candidate queries q of (1/N)·P(source)·w(q → pin) — summed
    /// at the pin's owner, so that the batches carry the softmax loss's logQ correction.
    public mutating func preparePositiveProbabilities(store: NodeStore) throws {
        var to = [Int64](), mass = [Float]()
        let n = Float(max(1, candidateCount))
        for r in store.ids.indices {
            let hasWalk = store.neighborIDs[r * store.t] >= 0
            let hasSeq = store.s > 0 && sequenceProbability > 0 && store.sequenceIDs[r * store.s] >= 0
            let ps: Float = hasSeq ? (hasWalk ? Float(sequenceProbability) : 1) : 0
            if hasWalk {
                for k in 0..<store.t where store.neighborIDs[r * store.t + k] >= 0 {
                    to.append(store.neighborIDs[r * store.t + k])
                    mass.append((1 - ps) * store.neighborWeights[r * store.t + k] / n)
                }
            }
            if hasSeq {
                for k in 0..<store.s where store.sequenceIDs[r * store.s + k] >= 0 {
                    to.append(store.sequenceIDs[r * store.s + k])
                    mass.append(ps * store.sequenceWeights[r * store.s + k] / n)
                }
            }
        }
        let comm = store.comm
        let (ids, values) = try NodeStore.routeRows(
            to, mass, width: 1, dest: to.map { GraphPartition.pinOwner($0, ranks: comm.size) }, comm: comm)
        // Sum in (id, value) order so that the result does not depend on the arrival order.
        let order = ids.indices.sorted { ids[$0] != ids[$1] ? ids[$0] < ids[$1] : values[$0] < values[$1] }
        var probability = [Float](repeating: 0, count: store.ids.count)
        for i in order {
            guard let r = store.row(of: ids[i]) else {
                throw GraphError("positive pin \(ids[i]) is not held by its owner (dangling id)")
            }
            probability[r] += values[i]
        }
        positiveProbability = probability
        withLogQ = true
    }

    /// SplitMix64's output function.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The global indices of the queries of micro-batch `i` of step `step`: min(M, N) distinct
    /// values in 0 ..< N (Floyd's algorithm, O(M)).
    public func queryIndices(step: Int, microBatch i: Int) -> [Int] {
        let n = candidateCount, m = min(microBatchSize, candidateCount)
        var rng = RandomStream(seed: seed ^ 0x2545_F491_4F6C_DD1D, rank: UInt64(step), index: UInt64(i))
        var chosen = Set<Int>(minimumCapacity: m)
        var out = [Int]()
        out.reserveCapacity(m)
        for j in (n - m)..<n {
            let r = rng.int(below: j + 1)
            let pick = chosen.contains(r) ? j : r
            chosen.insert(pick)
            out.append(pick)
        }
        return out
    }

    /// Collective: the queries of every micro-batch of step `step` (identical on every rank and
    /// for any rank count): global indices from `queryIndices`, resolved to pin ids by the
    /// ranks holding them (one alltoallv; O(global batch)).
    public func queries(step: Int, comm: Communicator) throws -> [[Int64]] {
        if candidateCount == 0 { return Array(repeating: [], count: microBatches) }
        let wanted = (0..<microBatches).map { queryIndices(step: step, microBatch: $0) }
        let flat = wanted.flatMap { $0 }
        let p = comm.size
        func holder(_ g: Int) -> Int {
            var lo = 0, hi = p - 1  // last r with offsets[r] <= g
            while lo < hi {
                let mid = (lo + hi + 1) >> 1
                if offsets[mid] <= g { lo = mid } else { hi = mid - 1 }
            }
            return lo
        }
        var resolved = [Int64](repeating: 0, count: flat.count)
        if p == 1 {
            for (j, g) in flat.enumerated() { resolved[j] = directory[g] }
        } else {
            let dest = flat.map(holder)
            var counts = [Int](repeating: 0, count: p)
            for d in dest { counts[d] += 1 }
            var start = [Int](repeating: 0, count: p)
            for r in 1..<p { start[r] = start[r - 1] + counts[r - 1] }
            var order = [Int](repeating: 0, count: flat.count)
            for (j, d) in dest.enumerated() { order[start[d]] = j; start[d] += 1 }
            let (asked, askedCounts) = try comm.alltoallv(order.map { Int64(flat[$0]) }, sendCounts: counts)
            let me = offsets[comm.rank]
            let reply = asked.map { directory[Int($0) - me] }
            let back = try comm.alltoallv(reply, sendCounts: askedCounts).values
            for (k, j) in order.enumerated() { resolved[j] = back[k] }
        }
        var out: [[Int64]] = []
        var at = 0
        for w in wanted {
            out.append(Array(resolved[at..<at + w.count]))
            at += w.count
        }
        return out
    }

    /// Collective: this rank's share of step `step`.
    public func batch(step: Int, layers: Int, store: NodeStore) throws -> PinSageBatch {
        let comm = store.comm
        var out = PinSageBatch()
        let slots = (microBatches + comm.size - 1) / comm.size
        let chosen = try queries(step: step, comm: comm)
        for slot in 0..<slots {
            let i = slot * comm.size + comm.rank
            var rng = RandomStream(seed: seed, rank: UInt64(step), index: UInt64(i))
            let queries = i < microBatches ? chosen[i] : []
            let (nid, nw) = try store.fetchNeighbors(queries)
            let useSequence = sequenceProbability > 0 && store.s > 0
            let (sid, sw) = useSequence ? try store.fetchSequence(queries) : ([], [])
            var positives = [Int64]()
            for q in 0..<queries.count {
                // The rng draws are the same whichever source is used (rank-count independent).
                let source = rng.uniform()
                var u = Float(rng.uniform())
                let fromSequence =
                    useSequence && sid[q * store.s] >= 0 && (nid[q * store.t] < 0 || source < sequenceProbability)
                let (ids, ws, width) = fromSequence ? (sid, sw, store.s) : (nid, nw, store.t)
                var pick = ids[q * width]
                for k in 0..<width where ids[q * width + k] >= 0 {
                    pick = ids[q * width + k]
                    u -= ws[q * width + k]
                    if u <= 0 { break }
                }
                positives.append(pick)
            }
            var hard: [(Int, Int64)] = []
            if hardRampSteps > 0 && store.h > 0 {
                let band = try store.fetchHard(queries)
                let f = min(1, Double(step) / Double(hardRampSteps))
                for q in 0..<queries.count {
                    let row = band[q * store.h..<(q + 1) * store.h]
                    let n = row.prefix { $0 >= 0 }.count
                    if n == 0 { continue }
                    let lower = Int((1 - f) * Double(n) / 2)
                    for _ in 0..<hardPerQuery where rng.uniform() < f {
                        hard.append((q, row[row.startIndex + lower + rng.int(below: n - lower)]))
                    }
                }
            } else if hardRampSteps > 0 {
                // Second hop: neighbours of the queries' neighbours (one more collective fetch).
                let firstHop = nid.filter { $0 >= 0 }
                let (n2, _) = try store.fetchNeighbors(firstHop)
                var offset = 0
                let p = min(1, Double(step) / Double(hardRampSteps))
                for q in 0..<queries.count {
                    let mine = (0..<store.t).map { nid[q * store.t + $0] }.filter { $0 >= 0 }
                    var pool: [Int64] = []
                    let direct = Set(mine)
                    for j in 0..<mine.count {
                        for k in 0..<store.t {
                            let c = n2[(offset + j) * store.t + k]
                            if c >= 0 && c != queries[q] && !direct.contains(c) { pool.append(c) }
                        }
                    }
                    offset += mine.count
                    if !pool.isEmpty && rng.uniform() < p { hard.append((q, pool[rng.int(below: pool.count)])) }
                }
            }
            var targets = queries
            var seen = Set(queries)
            for p in positives where seen.insert(p).inserted { targets.append(p) }
            for (_, h) in hard where seen.insert(h).inserted { targets.append(h) }
            let graph = try ComputationGraph.build(targets: targets, layers: layers, store: store)
            let logQ: [Float]? =
                !withLogQ
                ? nil
                : try store.fetch(positives, width: 1) { r, out in out.append(positiveProbability[r]) }
            if queries.isEmpty { continue }
            var index: [Int64: Int] = [:]
            for (r, id) in targets.enumerated() { index[id] = r }
            out.graphs.append(graph)
            out.queryRows.append(queries.map { index[$0]! })
            out.positiveRows.append(positives.map { index[$0]! })
            out.hardNegatives.append(hard.map { (query: $0.0, row: index[$0.1]!) })
            if let q = logQ { out.positiveLogQ.append(q.map { Foundation.log(max($0, 1e-12)) }) }
        }
        return out
    }
}

/// Bulk embedding, layer by layer: every pin's layer-k vector is computed once (by its owner),
/// then the layer-k vectors its pins' neighbours need are fetched from their owners, then layer
/// k + 1 — no repeated computation of shared neighbourhoods.
public enum PinSageEmbedder {
    /// Collective: embeddings of this rank's pins (`store.ids`), (n, dOut) row-major.
    public static func embedAll(
        model: PinSageModel<Float>, store: NodeStore, chunk: Int = 1024, progress: ((Int) -> Void)? = nil
    ) throws -> [Float] {
        let n = store.ids.count, t = store.t
        var h = model.input(ids: store.ids, content: store.content).data
        var width = model.config.inputWidth
        // Unique neighbour ids of the local pins, and for each (pin, k) the row in that list.
        var unique = Array(Set(store.neighborIDs.filter { $0 >= 0 })).sorted()
        var position: [Int64: Int] = [:]
        for (r, id) in unique.enumerated() { position[id] = r }
        for (k, conv) in model.convs.enumerated() {
            let current = h, w = width
            let remote = try store.fetch(unique, width: w) { r, out in
                out.append(contentsOf: current[r * w..<(r + 1) * w])
            }
            var next = [Float]()
            next.reserveCapacity(n * conv.dOut)
            var lo = 0
            while lo < n {
                let hi = min(n, lo + chunk)
                let b = hi - lo
                var neighbors = [Float](), weights = [Float]()
                neighbors.reserveCapacity(b * t * w)
                for r in lo..<hi {
                    for j in 0..<t {
                        let id = store.neighborIDs[r * t + j]
                        if id >= 0 {
                            let u = position[id]!
                            neighbors.append(contentsOf: remote[u * w..<(u + 1) * w])
                            weights.append(store.neighborWeights[r * t + j])
                        } else {
                            neighbors.append(contentsOf: current[r * w..<(r + 1) * w])
                            weights.append(0)
                        }
                    }
                }
                let z = conv.forward(
                    selfX: Tensor(rows: b, cols: w, data: Array(current[lo * w..<hi * w])),
                    neighbors: Tensor(rows: b * t, cols: w, data: neighbors), weights: weights, t: t)
                next += z.data
                lo = hi
            }
            h = next
            width = conv.dOut
            progress?(k + 1)
        }
        if let output = model.output {
            // The final dense layers are per pin: no exchange.
            var out = [Float]()
            out.reserveCapacity(n * output.dOut)
            var lo = 0
            while lo < n {
                let hi = min(n, lo + chunk)
                out += output.forward(Tensor(rows: hi - lo, cols: width, data: Array(h[lo * width..<hi * width]))).data
                lo = hi
            }
            h = out
        }
        unique = []
        return h
    }
}

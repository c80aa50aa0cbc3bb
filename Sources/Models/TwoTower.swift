import Artifacts
import EventData
import Foundation
import Learning
import Linalg

/// What the user tower reads, and how the model is shaped.
///
/// The user tower's input for a user at time t, from the user's events strictly before t
/// (`UserTowerState`): the time-decayed mean PinSage vector of the engagements (saves weigh 1,
/// closeups and clicks 0.5, each × 2^(−age / half-life)), the mean of the last `shortLength`
/// engagements, the decayed mean of the hides (negative signal), the country (hashed into
/// `countryBuckets` one-hot slots), the device (one-hot), and two activity scalars. The pin
/// tower is the frozen PinSage vector, so user vectors search the night's PinSage index as is.
public struct TwoTowerConfig: Sendable, Equatable {
    /// PinSage vector width (the user vector's width too).
    public var d: Int
    /// Hidden width of the user tower's MLP.
    public var hidden = 128
    /// One-hot slots the country codes are hashed into.
    public var countryBuckets = 32
    /// Half-life of an engagement's weight in the long-term mean, hours.
    public var halfLifeHours = 240.0
    /// Engagements in the short-term mean.
    public var shortLength = 5
    /// Softmax temperature of the in-batch loss (scores are cosines).
    public var temperature = 0.1

    public init(d: Int) { self.d = d }

    /// Width of the user tower's input row.
    public var inputWidth: Int { 3 * d + countryBuckets + Device.allCases.count + 2 }
}

/// The two-tower retrieval model's user tower: u = normalise(MLP(x) + long(x)), where x is the
/// encoded history (`TwoTowerConfig`) and long(x) its decayed mean engagement vector (a
/// residual: an untrained tower already points at what the user engaged with). Trained with an
/// in-batch sampled softmax against frozen PinSage pin vectors, with the logQ correction.
public final class TwoTowerModel<T: Real> {
    public let config: TwoTowerConfig
    public let parameters: ParameterStore<T>
    let tower: Sequential<T>
    // Forward caches for backward.
    private var raw = Tensor<T>.zeros(0, 0)
    private var norms: [T] = []

    /// A fresh model; the parameters come from `seed` only.
    public init(config: TwoTowerConfig, seed: UInt64 = 7) {
        self.config = config
        parameters = ParameterStore(seed: seed)
        tower = Sequential.mlp(
            parameters, name: "user", widths: [config.inputWidth, config.hidden, config.d], finalActivation: false)
        // Start near the residual: the last layer's weights at a tenth of Glorot.
        if let last = parameters.view(named: "user.1.weight") {
            let w = parameters.value(last)
            for i in 0..<last.count { w[i] *= T(0.1) }
        }
    }

    /// User vectors (B × d), unit length, from encoded inputs `x` (B × inputWidth). Caches what
    /// `backward` needs.
    @_specialize(where T == Float)
    public func userVectors(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.cols == config.inputWidth, "TwoTowerModel: input width \(x.cols), expected \(config.inputWidth)")
        let d = config.d, w = config.inputWidth
        var h = tower.forward(x)
        for r in 0..<x.rows { for j in 0..<d { h.data[r * d + j] += x.data[r * w + j] } }
        raw = h
        norms = (0..<h.rows).map { r in
            var s: T = 0
            for j in 0..<d { s += h.data[r * d + j] * h.data[r * d + j] }
            return Swift.max(s.squareRoot(), T(1e-6))
        }
        for r in 0..<h.rows { for j in 0..<d { h.data[r * d + j] /= norms[r] } }
        return h
    }

    /// Backward from dL/du (B × d) of the last `userVectors` call: adds dL/dθ to the gradients.
    @_specialize(where T == Float)
    public func backward(_ du: Tensor<T>) {
        let d = config.d
        var g = Tensor<T>.zeros(du.rows, d)
        for r in 0..<du.rows {
            // u = h / |h|: dL/dh = (du − u (u·du)) / |h|.
            var dot: T = 0
            for j in 0..<d { dot += raw.data[r * d + j] / norms[r] * du.data[r * d + j] }
            for j in 0..<d {
                g.data[r * d + j] = (du.data[r * d + j] - raw.data[r * d + j] / norms[r] * dot) / norms[r]
            }
        }
        _ = tower.backward(g)  // the residual's input needs no gradient
    }

    /// In-batch sampled softmax over one group: user i's candidates are the group's target pins
    /// `targets` (B × d), its own first; logits u_i·p_j / temperature − logQ_j; a candidate that
    /// is the same pin as i's target (`pins`) is masked. Returns the loss ÷ `normalizer` and
    /// dL/du.
    @_specialize(where T == Float)
    public static func inBatchSoftmax(
        users u: Tensor<T>, targets p: Tensor<T>, pins: [Int64], logQ: [T], temperature: T, normalizer: T
    ) -> (loss: T, du: Tensor<T>) {
        let m = u.rows, d = u.cols
        precondition(p.rows == m && p.cols == d && pins.count == m && logQ.count == m)
        var scores = Tensor<T>.zeros(m, m)
        T.gemm(
            .none, .transpose, m: m, n: m, k: d, alpha: 1 / temperature, a: u.data, lda: d, b: p.data, ldb: d,
            beta: 0, c: &scores.data, ldc: m)
        // Column 0: the user's own target; then the others in order.
        var logits = Tensor<T>.zeros(m, m), lq = Tensor<T>.zeros(m, m)
        for i in 0..<m {
            logits[i, 0] = scores[i, i]
            lq[i, 0] = logQ[i]
            var c = 1
            for j in 0..<m where j != i {
                logits[i, c] = scores[i, j]
                lq[i, c] = pins[j] == pins[i] ? 1e4 : logQ[j]  // masked: exp(z − 1e4) underflows
                c += 1
            }
        }
        let (loss, dl) = Loss.sampledSoftmax(logits: logits, logQ: lq, normalizer: normalizer)
        var ds = Tensor<T>.zeros(m, m)
        for i in 0..<m {
            ds[i, i] = dl[i, 0] / temperature
            var c = 1
            for j in 0..<m where j != i {
                ds[i, j] = dl[i, c] / temperature
                c += 1
            }
        }
        var du = Tensor<T>.zeros(m, d)
        T.gemm(
            .none, .none, m: m, n: d, k: m, alpha: 1, a: ds.data, lda: m, b: p.data, ldb: d, beta: 0, c: &du.data,
            ldc: d)
        return (loss, du)
    }

    /// Saves the parameters with the config and `version` as attributes (HDF5).
    public func save(path: String, version: String, embeddingVersion: String) throws {
        let f = try H5File(path: path, mode: .create)
        try f.root.write("parameters", parameters.valuesArray().map { Double($0) }, shape: [parameters.count])
        try f.root.setAttribute("d", Int64(config.d))
        try f.root.setAttribute("hidden", Int64(config.hidden))
        try f.root.setAttribute("country_buckets", Int64(config.countryBuckets))
        try f.root.setAttribute("half_life_hours", config.halfLifeHours)
        try f.root.setAttribute("short_length", Int64(config.shortLength))
        try f.root.setAttribute("temperature", config.temperature)
        try f.root.setAttribute("model_version", version)
        try f.root.setAttribute("embedding_model_version", embeddingVersion)
        try f.flush()
    }

    /// Loads a model saved by `save`; returns it with its version and the version of the
    /// PinSage embeddings it was trained on.
    public static func load(path: String) throws -> (model: TwoTowerModel, version: String, embeddingVersion: String) {
        let f = try H5File(path: path, mode: .read)
        var config = TwoTowerConfig(d: Int(try f.root.intAttribute("d")))
        config.hidden = Int(try f.root.intAttribute("hidden"))
        config.countryBuckets = Int(try f.root.intAttribute("country_buckets"))
        config.halfLifeHours = try f.root.doubleAttribute("half_life_hours")
        config.shortLength = Int(try f.root.intAttribute("short_length"))
        config.temperature = try f.root.doubleAttribute("temperature")
        let model = TwoTowerModel(config: config)
        let values = try f.root.read("parameters", as: Double.self)
        guard values.count == model.parameters.count else {
            throw ArtifactError(
                file: path, object: "/parameters",
                message: "\(values.count) values, the model has \(model.parameters.count)")
        }
        model.parameters.setValues(values.map { T($0) })
        return (
            model, try f.root.stringAttribute("model_version"), try f.root.stringAttribute("embedding_model_version")
        )
    }
}

/// One global step's share of this rank: whole softmax groups (a group never spans ranks, so
/// the summed loss and gradient do not depend on the rank count).
public struct TwoTowerBatch {
    /// Per group: encoded user inputs (n × inputWidth), target pins (n), their vectors
    /// (n × d), and log of each target's sampling probability (n).
    public var groups: [(inputs: [Float], pins: [Int64], targets: [Float], logQ: [Float])] = []
    public init() {}
}

extension TwoTowerModel: TrainableModel {
    public var tables: [EmbeddingTable<T>] { [] }

    public func lossAndGradients(_ batch: TwoTowerBatch, normalizer: T, step: Int) -> (
        loss: Double, sparse: [SparseRows<T>]
    ) {
        var total = 0.0
        let w = config.inputWidth, d = config.d
        for group in batch.groups {
            let n = group.pins.count
            guard n > 0 else { continue }
            let u = userVectors(Tensor(rows: n, cols: w, data: group.inputs.map { T($0) }))
            let (loss, du) = Self.inBatchSoftmax(
                users: u, targets: Tensor(rows: n, cols: d, data: group.targets.map { T($0) }), pins: group.pins,
                logQ: group.logQ.map { T($0) }, temperature: T(config.temperature), normalizer: normalizer)
            total += Double(loss)
            backward(du)
        }
        return (total, [])
    }
}

extension TwoTowerModel where T == Float {
    /// The model of the two-tower run at `root` (`mosaic retrieval train`) with its version,
    /// checked against the PinSage vectors it will read.
    ///
    /// - Throws: `ArtifactError` naming the model file when it was trained on other embeddings
    ///   than `embeddingVersion` or has another width than `d`.
    public static func load(run root: URL, embeddingVersion: String, d: Int) throws -> (
        model: TwoTowerModel, version: String
    ) {
        let path = try PublishedRun.open(root: root).paths(of: "model")[0]
        let (model, version, trainedOn) = try load(path: path)
        guard trainedOn == embeddingVersion, model.config.d == d else {
            throw ArtifactError(
                file: path,
                message:
                    "model trained on embeddings '\(trainedOn)' (d \(model.config.d)); the embeddings given are '\(embeddingVersion)' (d \(d)): retrain with `mosaic retrieval train` on them"
            )
        }
        return (model, version)
    }
}

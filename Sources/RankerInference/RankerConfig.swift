import Foundation
import Layers

/// Shape and training settings of a ranker, saved as JSON beside the model in its HDF5 file so
/// that `mosaic ranker score` rebuilds exactly the trained architecture.
public struct RankerConfig: Sendable, Codable, Equatable {
    /// `dcn-mmoe`: hashed embeddings ‖ dense ‖ content → DCN-v2 → MMoE towers (+ position
    /// tower in training). `lr`: logistic regression over the same sparse and dense inputs
    /// (the baseline every report shows the lift against).
    public enum Architecture: String, Sendable, Codable, CaseIterable {
        case dcnMMoE = "dcn-mmoe"
        case logistic = "lr"
    }
    public var architecture = Architecture.dcnMMoE
    /// Sparse fields F per example; each is one embedding row of width `dim`.
    public var fields = 10, dim = 10
    /// Rows of the shared embedding table.
    public var tableRows = 5_382
    /// true: raw ids are hashed into rows (salted by field, collisions allowed); false: ids are
    /// already rows in 0..<tableRows (e.g. Frappe's global one-hot indices).
    public var hashIDs = false
    /// Dense features (popularity, age, activity…) and candidate content embedding widths.
    public var denseWidth = 0, contentWidth = 0
    /// DCN-v2 layers; `crossRank` > 0 selects the low-rank mixture with `crossExperts` experts.
    public var crossLayers = 4, crossRank = 0, crossExperts = 1
    /// MMoE: experts, expert MLP widths, tower widths (last must be 1: one logit per task).
    public var experts = 1, expertWidths = [400, 400, 400], towerWidths = [1]
    /// Task names (e.g. ["save", "closeup"]); one tower and logit each.
    public var tasks = ["click"]
    /// Final score = Σ_k taskWeights[k]·P_k (calibrated when calibrators are saved).
    public var taskWeights = [1.0]
    /// Position buckets of the shallow position tower (0 = no tower) and its hidden width. The
    /// tower's logit is added in training only; at inference the position is nulled.
    public var positionBuckets = 0, positionHidden = 8
    /// Dropout on the cross network's output.
    public var dropout = 0.0
    /// L2 on looked-up embedding rows, per occurrence: adds embeddingL2·‖e‖² per lookup to the
    /// loss (before dividing by the batch size), so it does not depend on the rank count.
    public var embeddingL2 = 0.0
    /// FuxiCTR-style embedding regularizer: (λ/2)·‖W‖² over the WHOLE table every step (every
    /// row decays, touched or not; added once per step, by rank 0, so rank-count independent).
    public var embeddingDecay = 0.0
    public var seed: UInt64 = 2021
    /// DIN: target attention (one head) over the last `shortLength` events (0 = off).
    public var shortLength = 0
    /// SIM: the GSU keeps `simK` past events per candidate (0 = off) by `simSearch` (`hard`:
    /// the user's events in the candidate's category; `soft`: top-K by inner product of content
    /// embeddings); the ESU is multi-head target attention (`simHeads`) over them.
    public var simK = 0, simHeads = 2
    public var simSearch = "hard"
    /// Buckets of the time since an event (log2 of minutes, capped) in sequence encodings.
    public var timeBuckets = 16
    /// The sparse field holding the candidate pin id: its embedding is the attention query, and
    /// sequence events' pins are looked up with the same hashing salt.
    public var candidateField = 1
    /// Transformer sequence encoder (`SequenceTransformer`, TransAct style) over the last
    /// `transformerLength` events with the candidate as the final token (0 = off); heads split
    /// `dim`; `transformerLayers` post-LN blocks with an FFN of width 2·dim.
    public var transformerLength = 0, transformerHeads = 2, transformerLayers = 1
    /// Whether the transformer's event tokens include the time-since-event bucket embedding.
    public var transformerTime = true
    /// Whether the transformer's tokens also hold the pins' content embeddings (events' pins and
    /// the candidate's), projected contentWidth → dim by one learned matrix, as TransAct's
    /// tokens hold PinSage embeddings. Needs `contentWidth` > 0 and histories with embeddings.
    public var transformerContent = false
    /// Whether the histories hold skip events (impressions without engagement, type
    /// `impression`, their own type embedding) beside the engagements; hides stay their own type.
    /// Recorded so that serving feeds the same kind of history the model was trained on.
    public var skipEvents = false

    public init() {}

    /// Decodes every field when present, keeping the default otherwise (model files written
    /// before a field existed still load).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func get<V: Decodable>(_ key: CodingKeys, _ value: inout V) throws {
            if let v = try c.decodeIfPresent(V.self, forKey: key) { value = v }
        }
        try get(.architecture, &architecture)
        try get(.fields, &fields)
        try get(.dim, &dim)
        try get(.tableRows, &tableRows)
        try get(.hashIDs, &hashIDs)
        try get(.denseWidth, &denseWidth)
        try get(.contentWidth, &contentWidth)
        try get(.crossLayers, &crossLayers)
        try get(.crossRank, &crossRank)
        try get(.crossExperts, &crossExperts)
        try get(.experts, &experts)
        try get(.expertWidths, &expertWidths)
        try get(.towerWidths, &towerWidths)
        try get(.tasks, &tasks)
        try get(.taskWeights, &taskWeights)
        try get(.positionBuckets, &positionBuckets)
        try get(.positionHidden, &positionHidden)
        try get(.dropout, &dropout)
        try get(.embeddingL2, &embeddingL2)
        try get(.embeddingDecay, &embeddingDecay)
        try get(.seed, &seed)
        try get(.shortLength, &shortLength)
        try get(.simK, &simK)
        try get(.simHeads, &simHeads)
        try get(.simSearch, &simSearch)
        try get(.timeBuckets, &timeBuckets)
        try get(.candidateField, &candidateField)
        try get(.transformerLength, &transformerLength)
        try get(.transformerHeads, &transformerHeads)
        try get(.transformerLayers, &transformerLayers)
        try get(.transformerTime, &transformerTime)
        try get(.transformerContent, &transformerContent)
        try get(.skipEvents, &skipEvents)
    }

    /// Event types in sequence encodings (impression, closeup, click, save, hide).
    public static let eventTypes = 5

    /// Width added to the DCN input by the attention outputs.
    public var attentionWidth: Int {
        (shortLength > 0 ? dim : 0) + (simK > 0 ? dim : 0) + (transformerLength > 0 ? dim : 0)
    }

    /// Whether the model reads sequence slots (DIN, SIM or the transformer).
    public var usesSequences: Bool { shortLength > 0 || simK > 0 || transformerLength > 0 }

    /// Width of the DCN input: F·dim + denseWidth + contentWidth.
    public var inputWidth: Int { fields * dim + denseWidth + contentWidth + attentionWidth }

    public var crossKind: CrossKind { crossRank > 0 ? .lowRank(rank: crossRank, experts: crossExperts) : .fullRank }

    /// Checks the combination; throws a message naming the bad field.
    public func validate() throws {
        func fail(_ m: String) -> RankerError { RankerError("ranker config: \(m)") }
        guard fields > 0, dim > 0, tableRows > 0 else { throw fail("fields, dim and table_rows must be positive") }
        guard !tasks.isEmpty else { throw fail("tasks is empty") }
        guard taskWeights.count == tasks.count else {
            throw fail("task_weights has \(taskWeights.count) values for \(tasks.count) tasks")
        }
        guard towerWidths.last == 1 else { throw fail("the last tower width must be 1 (one logit per task)") }
        guard !expertWidths.isEmpty, experts > 0 else { throw fail("experts and expert_widths must be non-empty") }
        guard dropout >= 0, dropout < 1 else { throw fail("dropout must be in [0, 1)") }
        guard positionBuckets >= 0 else { throw fail("position_buckets must be ≥ 0") }
        guard shortLength >= 0, simK >= 0, simHeads > 0, timeBuckets > 0 else {
            throw fail("short_length, sim_k must be ≥ 0; sim_heads, time_buckets > 0")
        }
        guard transformerLength >= 0, transformerLayers > 0, transformerHeads > 0, dim % transformerHeads == 0 else {
            throw fail("transformer_length must be ≥ 0, transformer_layers > 0, and transformer_heads must divide dim")
        }
        guard ["hard", "soft"].contains(simSearch) else {
            throw fail("sim_search is '\(simSearch)', expected hard or soft")
        }
        guard candidateField >= 0, candidateField < fields else {
            throw fail("candidate_field \(candidateField) outside 0..<\(fields)")
        }
    }

    public func json() -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: try! e.encode(self), as: UTF8.self)
    }

    public static func fromJSON(_ text: String) throws -> RankerConfig {
        do { return try JSONDecoder().decode(RankerConfig.self, from: Data(text.utf8)) } catch {
            throw RankerError("ranker config: cannot decode JSON: \(error)")
        }
    }
}

/// An error with a message for the user (file, row and field where it applies).
public struct RankerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

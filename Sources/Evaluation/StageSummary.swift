import Foundation

/// The machine-readable summary a stage writes beside its artifact (JSON): what `mosaic
/// evaluate` reports and `mosaic monitor` compares between nights. Every figure is one the
/// stage already prints.
public enum StageSummary {
    /// Writes `value` as pretty, key-sorted JSON to `path` (atomically), creating its folder.
    public static func write<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try encoder.encode(value).write(to: url, options: .atomic)
    }

    /// Reads a summary written by `write`; nil when the file does not exist.
    public static func read<T: Decodable>(_ type: T.Type, from path: String) throws -> T? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try JSONDecoder().decode(type, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// The summary file of an artifact written to `out`: `out/summary.json` for a run root
    /// (a folder), `name.summary.json` beside a single file `name.h5`.
    public static func path(besideArtifact out: String) -> String {
        out.hasSuffix(".h5") ? String(out.dropLast(3)) + ".summary.json" : out + "/summary.json"
    }
}

/// `feed candidates`: every channel's recall of the oracle set and of the held-out saves.
public struct CandidatesSummary: Sendable, Codable, Equatable {
    public var stage = "feed-candidates"
    /// Users and candidates per user over every rank.
    public var users: Int, candidatesPerUser: Double
    /// Held-out days (0: no evaluation), the candidate-list sizes the recalls are measured at,
    /// and the size of each user's oracle set.
    public var holdoutDays: Int, sizes: [Int], oracleCount: Int
    /// One row per channel (and the merged list), recalls aligned with `sizes`.
    public var channels: [Channel]

    public struct Channel: Sendable, Codable, Equatable {
        public var channel: String
        public var oracleRecall: [Double], savedRecall: [Double]
        public var candidatesPerUser: Double
        public init(channel: String, oracleRecall: [Double], savedRecall: [Double], candidatesPerUser: Double) {
            self.channel = channel
            self.oracleRecall = oracleRecall
            self.savedRecall = savedRecall
            self.candidatesPerUser = candidatesPerUser
        }
    }

    public init(
        users: Int, candidatesPerUser: Double, holdoutDays: Int, sizes: [Int], oracleCount: Int, channels: [Channel]
    ) {
        self.users = users
        self.candidatesPerUser = candidatesPerUser
        self.holdoutDays = holdoutDays
        self.sizes = sizes
        self.oracleCount = oracleCount
        self.channels = channels
    }
}

/// `ranker train --data`: per task, the validation AUC, GAUC, log loss and the calibrated
/// probabilities' reliability; the training rows' dense features, the users' history lengths
/// and, for a model with target attention, its entropy (what `mosaic monitor` compares).
public struct RankerSummary: Sendable, Codable, Equatable {
    public var stage = "ranker-train"
    public var trainRows: Int, validRows: Int, bestEpoch: Int
    public var tasks: [Task]
    /// Moments of the dense features over the training rows.
    public var features: FeatureMoments?
    /// The values of the sparse (categorical) features over the training rows.
    public var categorical: [CategoricalDistribution]?
    /// Engagements per user before the cut.
    public var historyLengths: SequenceLengths?
    /// The ESU attention's entropy on the validation rows (nil: the model has no sequence).
    public var attention: AttentionEntropy?

    public struct Task: Sendable, Codable, Equatable {
        public var task: String
        /// AUC, GAUC (by user) and log loss of the raw logits on the validation rows.
        public var auc: Double?, gauc: Double?, logloss: Double
        /// The calibrated probabilities on the validation rows (nil without a calibrator).
        public var reliability: ReliabilityDiagram?
        /// Share of positive labels in the training rows (label drift; the join window's effect).
        public var trainPositiveRate: Double?
        public init(task: String, auc: Double?, gauc: Double?, logloss: Double, reliability: ReliabilityDiagram?) {
            self.task = task
            self.auc = auc
            self.gauc = gauc
            self.logloss = logloss
            self.reliability = reliability
        }
    }

    public init(
        trainRows: Int, validRows: Int, bestEpoch: Int, tasks: [Task], features: FeatureMoments?,
        historyLengths: SequenceLengths?, attention: AttentionEntropy?
    ) {
        self.trainRows = trainRows
        self.validRows = validRows
        self.bestEpoch = bestEpoch
        self.tasks = tasks
        self.features = features
        self.historyLengths = historyLengths
        self.attention = attention
    }
}

/// `feed rank`: every policy side by side (popularity, each channel alone, the merged list,
/// ranked, re-ranked, the oracle) under the logged hold-out and the world's truth, with the
/// shape of each policy's feeds.
public struct FeedSummary: Sendable, Codable, Equatable {
    public var stage = "feed-rank"
    public var users: Int, k: Int, holdoutDays: Int
    public var policies: [Policy]

    public struct Policy: Sendable, Codable, Equatable {
        public var policy: String
        /// Users with held-out saves, HR@k and recall@k of those saves.
        public var usersWithSaves: Int, hitRate: Double, recall: Double
        /// NDCG@k of the held-out saves (binary gains; nil when not measured).
        public var ndcg: Double?
        /// Expected saves per user and recall of the oracle set under the world's truth (nil on
        /// real data).
        public var expectedSaves: Double?, oracleRecall: Double?
        /// Distinct categories per feed, mean pairwise cosine (intra-list similarity), share of
        /// the catalogue shown, share of fresh pins (nil when not measured).
        public var categoriesPerFeed: Double?, intraListCosine: Double?, coverage: Double?, freshShare: Double?
        public init(
            policy: String, usersWithSaves: Int, hitRate: Double, recall: Double, expectedSaves: Double?,
            oracleRecall: Double?
        ) {
            self.policy = policy
            self.usersWithSaves = usersWithSaves
            self.hitRate = hitRate
            self.recall = recall
            self.expectedSaves = expectedSaves
            self.oracleRecall = oracleRecall
        }
    }

    public init(users: Int, k: Int, holdoutDays: Int, policies: [Policy]) {
        self.users = users
        self.k = k
        self.holdoutDays = holdoutDays
        self.policies = policies
    }
}

import Artifacts
import Collective
import EventData
import Events
import Foundation
import Learning
import Models
import Ranking

/// The pins as the ranker reads them, sharded over the ranks: the night's PinSage vector, the
/// category and the creation time of each pin.
public struct PinFeatureTable: Sendable {
    /// Rows: the PinSage vector then the creation day (days since the epoch, as a Float: about
    /// two minutes' precision); tag: the category.
    let table: PinVectorTable
    /// PinSage width.
    public var d: Int { table.d - 1 }
    /// The PinSage model version.
    public let embeddingVersion: String

    /// This rank's rows: `ids` (n), their PinSage `vectors` (n × d), categories and creation
    /// times (ms).
    public init(
        ids: [Int64], vectors: [Float], d: Int, categories: [Int32], createdAt: [Int64], embeddingVersion: String
    ) {
        var rows: [Float] = []
        for i in ids.indices {
            rows += vectors[i * d..<(i + 1) * d]
            rows.append(Float(Double(createdAt[i]) / 86_400_000))
        }
        table = PinVectorTable(ids: ids, vectors: rows, d: d + 1, tags: categories)
        self.embeddingVersion = embeddingVersion
    }

    init(table: PinVectorTable, embeddingVersion: String) {
        self.table = table
        self.embeddingVersion = embeddingVersion
    }

    /// This rank's slice of the embeddings run at `embeddings`, joined with the categories and
    /// creation times of the dataset's pins (collective).
    public static func load(world: DatasetReader, embeddings: URL, comm: Communicator) throws -> PinFeatureTable {
        var ids: [Int64] = [], categories: [Int32] = [], days: [Float] = []
        for path in try world.myShards("pins", comm: comm) {
            let t = try DatasetReader.readShard(path, entity: "pins")
            ids += t.i64("pin_id")
            categories += t.int32["category"]!
            days += t.i64("created_at_ms").map { Float(Double($0) / 86_400_000) }
        }
        let attributes = PinVectorTable(ids: ids, vectors: days, d: 1, tags: categories)
        let vectors = try PinEmbeddings.readMine(root: embeddings, comm: comm)
        let d = Int(try comm.allreduce(Int64(vectors.d), op: .max))
        guard d > 0 else {
            throw ArtifactError(file: embeddings.path, message: "the embeddings run holds no vectors")
        }
        let joined = try attributes.lookupDistinct(vectors.ids, comm: comm)
        var rows: [Float] = []
        rows.reserveCapacity(vectors.ids.count * (d + 1))
        for i in vectors.ids.indices {
            rows += vectors.vectors[i * d..<(i + 1) * d]
            rows.append(joined.vectors[i])
        }
        return PinFeatureTable(
            table: PinVectorTable(ids: vectors.ids, vectors: rows, d: d + 1, tags: joined.tags),
            embeddingVersion: try comm.broadcast(string: vectors.modelVersion))
    }

    /// The rows of this rank's `pins` (collective, as `PinVectorTable.lookupDistinct`):
    /// vectors (n × d), categories (−1 unknown), creation times (ms; 0 unknown), and whether
    /// each pin is known.
    public func lookup(_ pins: [Int64], comm: Communicator) throws -> (
        vectors: [Float], categories: [Int32], createdAt: [Int64], known: [Bool]
    ) {
        let (rows, tags, known) = try table.lookupDistinct(pins, comm: comm)
        let w = d + 1
        var vectors: [Float] = [], created: [Int64] = []
        vectors.reserveCapacity(pins.count * d)
        for i in pins.indices {
            vectors += rows[i * w..<(i * w + d)]
            created.append(Int64(Double(rows[i * w + d]) * 86_400_000))
        }
        return (vectors, tags, created, known)
    }
}

/// Every pin's impressions, closeups and saves per day over every user, held by the pin's
/// owner (`Sharding.owner`), answering "counts before day D" lookups (collective). Built from
/// events strictly before the cut. Memory: this rank's pins' active days.
public struct PinDailyStats: Sendable {
    /// pin → (day, cumulative counts through that day), days ascending.
    private var cumulative: [Int64: [(day: Int64, stats: FeedFeatures.PinStats)]] = [:]
    /// Global closeup and save rates per impression (the rates' prior).
    public private(set) var prior = FeedFeatures.Prior(closeup: 0, save: 0)

    public static func day(_ time: Int64) -> Int64 { time >= 0 ? time / 86_400_000 : (time + 1) / 86_400_000 - 1 }

    /// Collective: counts of every rank's `users`' events strictly before `cut`.
    public static func build(users: [UserEvents], before cut: Int64, comm: Communicator) throws -> PinDailyStats {
        struct Key: Hashable { var pin: Int64, day: Int64 }
        var counts: [Key: FeedFeatures.PinStats] = [:]
        for u in users {
            for i in u.pins.indices where u.times[i] < cut {
                let k = Key(pin: u.pins[i], day: day(u.times[i]))
                switch EventType(rawValue: u.types[i]) {
                case .impression: counts[k, default: .init()].impressions += 1
                case .closeup: counts[k, default: .init()].closeups += 1
                case .save: counts[k, default: .init()].saves += 1
                default: break
                }
            }
        }
        var outgoing = [[Int64]](repeating: [], count: comm.size)
        for (k, c) in counts {
            outgoing[Sharding.owner(k.pin, ranks: comm.size)] += [k.pin, k.day, c.impressions, c.closeups, c.saves]
        }
        let (received, _) = try comm.alltoallv(outgoing.flatMap { $0 }, sendCounts: outgoing.map(\.count))
        var merged: [Key: FeedFeatures.PinStats] = [:]
        var totals: [Int64] = [0, 0, 0]
        for i in stride(from: 0, to: received.count, by: 5) {
            let k = Key(pin: received[i], day: received[i + 1])
            merged[k, default: .init()].impressions += received[i + 2]
            merged[k]!.closeups += received[i + 3]
            merged[k]!.saves += received[i + 4]
            totals[0] += received[i + 2]
            totals[1] += received[i + 3]
            totals[2] += received[i + 4]
        }
        try comm.allreduce(&totals)
        var out = PinDailyStats()
        let shown = Double(max(totals[0], 1))
        out.prior = FeedFeatures.Prior(closeup: Double(totals[1]) / shown, save: Double(totals[2]) / shown)
        var byPin: [Int64: [(day: Int64, stats: FeedFeatures.PinStats)]] = [:]
        for (k, c) in merged { byPin[k.pin, default: []].append((k.day, c)) }
        for (pin, var days) in byPin {
            days.sort { $0.day < $1.day }
            var running = FeedFeatures.PinStats()
            for j in days.indices {
                running.impressions += days[j].stats.impressions
                running.closeups += days[j].stats.closeups
                running.saves += days[j].stats.saves
                days[j].stats = running
            }
            out.cumulative[pin] = days
        }
        return out
    }

    /// The counts of this rank's `pins` over the days strictly before `days` (one day per
    /// pin), asked of the pins' owners (collective).
    public func lookup(_ pins: [Int64], days: [Int64], comm: Communicator) throws -> [FeedFeatures.PinStats] {
        precondition(pins.count == days.count)
        let p = comm.size, n = pins.count
        // Requests (pin, day) in owner order; `at[i]`: request i's place in that order.
        var owner = [Int](repeating: 0, count: n), perRank = [Int](repeating: 0, count: p)
        for i in 0..<n {
            owner[i] = Sharding.owner(pins[i], ranks: p)
            perRank[owner[i]] += 1
        }
        var next = [Int](repeating: 0, count: p)
        for r in 1..<max(p, 1) { next[r] = next[r - 1] + perRank[r - 1] }
        var outgoing = [Int64](repeating: 0, count: 2 * n), at = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let j = next[owner[i]]
            next[owner[i]] += 1
            at[i] = j
            outgoing[2 * j] = pins[i]
            outgoing[2 * j + 1] = days[i]
        }
        let (asked, counts) = try comm.alltoallv(outgoing, sendCounts: perRank.map { 2 * $0 })
        var answers = [Int64](repeating: 0, count: asked.count / 2 * 3)
        for i in 0..<(asked.count / 2) {
            let s = before(pin: asked[2 * i], day: asked[2 * i + 1])
            answers[3 * i] = s.impressions
            answers[3 * i + 1] = s.closeups
            answers[3 * i + 2] = s.saves
        }
        // The answers come back rank by rank in the order asked: request i's at 3 · at[i].
        let back = try comm.alltoallv(answers, sendCounts: counts.map { $0 / 2 * 3 }).values
        return (0..<n).map {
            let a = 3 * at[$0]
            return FeedFeatures.PinStats(impressions: back[a], closeups: back[a + 1], saves: back[a + 2])
        }
    }

    /// Cumulative counts of an owned pin over the days before `day`.
    func before(pin: Int64, day: Int64) -> FeedFeatures.PinStats {
        guard let days = cumulative[pin] else { return .init() }
        var lo = 0, hi = days.count  // first index with day ≥ `day`
        while lo < hi {
            let mid = (lo + hi) / 2
            if days[mid].day < day { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? .init() : days[lo - 1].stats
    }
}

/// A user's state for the ranker's features, absorbing events in time order: the two-tower
/// state plus the engagements per category.
public struct RankingUserState: Sendable {
    public var tower: UserTowerState
    public var categoryCounts: [Int32: Int] = [:]
    public let profile: UserProfile?

    public init(config: TwoTowerConfig, profile: UserProfile?) {
        tower = UserTowerState(config: config)
        self.profile = profile
    }

    /// Absorbs an event on a pin with `vector` and `category`.
    public mutating func absorb(vector: ArraySlice<Float>, category: Int32, type: UInt8, time: Int64) {
        tower.absorb(vector: vector, type: type, time: time)
        if UserTowerState.engagementWeight(type) > 0, category >= 0 { categoryCounts[category, default: 0] += 1 }
    }

    /// The features' view of the user at `time`, with the two-tower vector from `model` (nil:
    /// no tower score).
    public func features(at time: Int64, model: TwoTowerModel<Float>?) -> FeedFeatures.User {
        var u = FeedFeatures.User()
        u.country = profile?.country ?? -1
        u.device = profile?.device ?? 255
        u.engagements = tower.engagements
        u.categoryCounts = categoryCounts
        u.longTerm = tower.longTermMean
        u.shortTerm = tower.shortTermMean
        if let model {
            var x: [Float] = []
            tower.encode(at: time, profile: profile, into: &x)
            u.towerVector = model.userVectors(Tensor(rows: 1, cols: x.count, data: x)).data
        }
        return u
    }
}

/// Ranking examples from a dataset run: one row per impression strictly before the cut, with
/// the features (`FeedFeatures`) as of its feed request (the session's first impression), the
/// logged slot, and the labels save and closeup (the same session's later engagement with the
/// pin, `UserEvents.impressionLabels`). Impressions of the last `validDays` before the cut are
/// the validation rows (calibration and early stopping); only impressions at or after `rowsFrom`
/// become rows (the history before it still feeds the features).
///
/// Point in time also for the night's models: PinSage vectors and the two-tower model trained on
/// events up to the cut have seen the rows' own saves (a save adds a pin–board edge that pulls the
/// pin towards the user's earlier pins), so rows must come after the models' training cut
/// (`rowsFrom` = the `--before-ms` of `graph build` and `retrieval train`): yesterday's models,
/// today's impressions, as in production. Both splits are dealt over the ranks
/// by a hash of (user, time, pin) (`CTRData.routed(byKey:)`), so 1, 2 or 4 ranks train on the
/// same rows in the same order.
public enum RankingExamples {
    /// Collective. `tower`: the two-tower model for the tower score (nil: 0). `labelWindow` (ms):
    /// label with delayed feedback (`UserEvents.impressionLabels(joinWindow:)`: engagements
    /// with the pin up to that long after the impression, in any session, also after the cut);
    /// nil: the same session's engagements.
    public static func build(
        users: [UserEvents], profiles: [Int64: UserProfile], pins: PinFeatureTable, stats: PinDailyStats,
        tower: TwoTowerModel<Float>?, before cut: Int64, rowsFrom: Int64 = .min, validDays: Int = 1,
        positionBuckets: Int = 32, batchUsers: Int = 256, labelWindow: Int64? = nil, comm: Communicator
    ) throws -> (train: CTRData, valid: CTRData) {
        let d = pins.d
        // Without a cut, the validation days end at the latest event.
        let end = cut == .max ? try UserEvents.latest(users, comm: comm) + 1 : cut
        let validCut = end - Int64(validDays) * 86_400_000
        var parts = [FeedFeatures.emptyData(contentWidth: d), FeedFeatures.emptyData(contentWidth: d)]
        var keys: [[UInt64]] = [[], []]
        let config = tower?.config ?? TwoTowerConfig(d: d)
        let rounds = Int(try comm.allreduce(Int64((users.count + batchUsers - 1) / batchUsers), op: .max))
        for round in 0..<rounds {
            let batch = Array(users.dropFirst(round * batchUsers).prefix(batchUsers))
            // Every pin the round reads: history and shown pins.
            var row: [Int64: Int] = [:], list: [Int64] = []
            for u in batch {
                for i in u.pins.indices where u.times[i] < cut && row[u.pins[i]] == nil {
                    row[u.pins[i]] = list.count
                    list.append(u.pins[i])
                }
            }
            let fetched = try pins.lookup(list, comm: comm)
            // Stats of each shown pin as of its request's day.
            var requests: [(pin: Int64, day: Int64)] = [], requestOf: [[Int]] = []
            var requestAt: [[Int64]] = []
            for u in batch {
                let times = requestTimes(u, before: cut)
                requestAt.append(times)
                var r: [Int] = []
                for i in u.pins.indices where u.times[i] < cut && u.types[i] == EventType.impression.rawValue {
                    r.append(requests.count)
                    requests.append((u.pins[i], PinDailyStats.day(times[i])))
                }
                requestOf.append(r)
            }
            let pinStats = try stats.lookup(requests.map(\.pin), days: requests.map(\.day), comm: comm)
            for (b, u) in batch.enumerated() {
                let labels = labelWindow.map { u.impressionLabels(joinWindow: $0) } ?? u.impressionLabels()
                var state = RankingUserState(config: config, profile: profiles[u.user])
                var snapshot: (time: Int64, user: FeedFeatures.User)? = nil
                var k = 0
                var i = 0
                while i < u.pins.count, u.times[i] < cut {
                    // Events at one instant: rows first (features strictly before), then absorb.
                    var j = i
                    while j < u.pins.count, u.times[j] == u.times[i] { j += 1 }
                    for e in i..<j where u.types[e] == EventType.impression.rawValue {
                        let t = requestAt[b][e]
                        if snapshot?.time != t { snapshot = (t, state.features(at: t, model: tower)) }
                        let r = row[u.pins[e]]!
                        defer { k += 1 }
                        guard fetched.known[r], u.times[e] >= rowsFrom else { continue }
                        let part = u.times[e] < validCut ? 0 : 1
                        FeedFeatures.append(
                            user: snapshot!.user,
                            pin: FeedFeatures.Pin(
                                category: fetched.categories[r], createdAt: fetched.createdAt[r],
                                vector: fetched.vectors[r * d..<(r + 1) * d], stats: pinStats[requestOf[b][k]]),
                            surface: u.surfaces[e], time: t, prior: stats.prior, into: &parts[part])
                        parts[part].positions.append(min(Int(u.positions[e]), positionBuckets - 1))
                        parts[part].groups.append(u.user)
                        parts[part].labels[0].append(ImpressionLabels.has(labels[e], .save) ? 1 : 0)
                        parts[part].labels[1].append(ImpressionLabels.has(labels[e], .closeup) ? 1 : 0)
                        keys[part].append(
                            Sharding.hash(u.user ^ Int64(bitPattern: Sharding.hash(u.times[e] &* 31 ^ u.pins[e]))))
                    }
                    // Requests whose first impression is later read the absorbed events; a
                    // session's own events stay out of its rows (they follow the request).
                    for e in i..<j where UserTowerState.reads(u.types[e]) {
                        let r = row[u.pins[e]]!
                        guard fetched.known[r] else { continue }
                        state.absorb(
                            vector: fetched.vectors[r * d..<(r + 1) * d], category: fetched.categories[r],
                            type: u.types[e], time: u.times[e])
                    }
                    i = j
                }
            }
        }
        return (try parts[0].routed(byKey: keys[0], comm: comm), try parts[1].routed(byKey: keys[1], comm: comm))
    }

    /// For each event: the time of its session's first impression (the feed request), or its
    /// own time when the session has no impression before it.
    static func requestTimes(_ u: UserEvents, before cut: Int64) -> [Int64] {
        var first: [Int64: Int64] = [:]
        for i in u.pins.indices where u.times[i] < cut && u.types[i] == EventType.impression.rawValue {
            first[u.sessions[i]] = min(first[u.sessions[i]] ?? .max, u.times[i])
        }
        return u.pins.indices.map { min(first[u.sessions[$0]] ?? u.times[$0], u.times[$0]) }
    }
}

/// The ranker of the feed: the configuration `ranker train --data` uses for `FeedFeatures`.
public enum FeedRankerSetup {
    /// A DCN-v2 + MMoE ranker (save and closeup, position tower) shaped for `FeedFeatures` with
    /// PinSage vectors of width `d`.
    public static func config(d: Int) -> RankerConfig {
        var c = RankerConfig()
        c.fields = FeedFeatures.fieldNames.count
        c.dim = 8
        c.tableRows = 4096
        c.hashIDs = true
        c.denseWidth = FeedFeatures.denseNames.count
        c.contentWidth = d
        c.crossLayers = 2
        c.experts = 3
        c.expertWidths = [128, 64]
        c.towerWidths = [32, 1]
        c.tasks = ["save", "closeup"]
        c.taskWeights = [1, 0.25]
        c.positionBuckets = 32
        c.candidateField = 0
        c.seed = 7
        return c
    }
}

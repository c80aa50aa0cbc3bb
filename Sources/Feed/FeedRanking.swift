import Artifacts
import Collective
import EventData
import Events
import Foundation
import Learning
import Models
import Publishing
import Ranking

/// The funnel's ranking stage: every user's merged candidates scored by the ranker with the
/// serving fast path (`RequestScorer`, position-free), calibrated per task, combined as
/// w_save · P(save) + w_closeup · P(closeup), then re-ranked for diversity (MMR over the PinSage
/// vectors with a per-category cap). Features as of the cut (`FeedFeatures`, the training rows'
/// implementation). Collective: users in rounds, pins and statistics fetched from their owners.
public struct FeedRanking {
    public let scorer: RequestScorer
    public let calibrators: [String: Calibrator]
    /// The two-tower model for the tower-score feature (nil: 0, as in training without it).
    public var tower: TwoTowerModel<Float>?
    /// Weights of the calibrated probabilities in the final score.
    public var saveWeight = 1.0, closeupWeight = 1.0
    /// Feed length, candidates kept ranked per user (the serving shard re-scores these), users
    /// per rank per round.
    public var k = 50, keep = 500, batchUsers = 256
    public var rerank = DiversityRerank(lambda: 0.85, window: 8, maxPerCategory: 4)
    /// Slots of the feed kept for fresh pins (created in the last `freshWindow` ms): the best
    /// scored fresh candidates not already in the feed take slots k/(n+1), 2k/(n+1), …
    public var freshSlots = 5
    public var freshWindow: Int64 = 2 * 86_400_000
    /// The model's file, named by the error on a score that is not finite.
    public var modelSource = "the ranker"

    /// `feed` (indices of ranked candidates) with up to `slots` of the `fresh` indices (best
    /// first) placed at evenly spaced slots, the feed's own pins after them shifted down, the
    /// length at most `k`. A feed already holding that many fresh pins is left as is.
    public static func withFreshSlots(_ feed: [Int], fresh: [Int], slots: Int, k: Int) -> [Int] {
        let freshSet = Set(fresh)
        let missing = slots - feed.filter { freshSet.contains($0) }.count
        guard missing > 0 else { return feed }
        let inFeed = Set(feed)
        let extra = fresh.filter { !inFeed.contains($0) }.prefix(missing)
        guard !extra.isEmpty else { return feed }
        var out = feed
        for (n, j) in extra.enumerated() {
            let slot = min(out.count, (n + 1) * k / (extra.count + 1))
            out.insert(j, at: slot)
        }
        return Array(out.prefix(k))
    }

    public init(model: RankerModel<Float>, calibrators: [String: Calibrator], tower: TwoTowerModel<Float>?) {
        scorer = RequestScorer(model)
        self.calibrators = calibrators
        self.tower = tower
    }

    /// One user's result: the feed (after the re-rank) and the ranked candidates (best first,
    /// up to `keep`), each with its score and calibrated probabilities.
    public struct Ranked: Sendable {
        public var feed: [Int] = []  // indices into `pins`
        public var pins: [Int64] = [], score: [Float] = [], pSave: [Float] = [], pCloseup: [Float] = []
        /// Each ranked candidate's ranker features (`FeedFeatures`, aligned with `pins`): the
        /// field ids (`fieldNames.count` each), the dense values (`denseNames.count` each) and the
        /// content vector (d each), published so the serving shard re-scores them online.
        public var ids: [Int64] = [], dense: [Float] = [], content: [Float] = []
    }

    /// Ranks each of this rank's `users`' `candidates` at `cut` (collective); every user's
    /// result at once (memory: users × `keep` ranked candidates with their features; see
    /// `rank(…, round:)` for bounded memory).
    public func rank(
        users: [UserEvents], profiles: [Int64: UserProfile], candidates: [[Int64]], pins: PinFeatureTable,
        stats: PinDailyStats, at cut: Int64, comm: Communicator, progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> [Ranked] {
        precondition(candidates.count == users.count)
        var out = [Ranked](repeating: Ranked(), count: users.count)
        try rank(
            users: users, profiles: profiles, candidates: { $0.map { candidates[$0] } }, pins: pins, stats: stats,
            at: cut,
            comm: comm, progress: progress
        ) { batch, ranked in for (b, r) in zip(batch, ranked) { out[b] = r } }
        return out
    }

    /// Ranks this rank's `users` in rounds of `batchUsers` (collective): `candidates(indices)`
    /// gives the candidates of a round's users (indices into `users`) when the round starts, and
    /// `round(indices, results)` receives them and their results before the next round starts,
    /// so a rank holds one round's candidates, features and results at a time.
    public func rank(
        users: [UserEvents], profiles: [Int64: UserProfile], candidates candidatesOf: ([Int]) throws -> [[Int64]],
        pins: PinFeatureTable, stats: PinDailyStats, at cut: Int64, comm: Communicator,
        progress: (Int, Int) -> Void = { _, _ in }, round consume: ([Int], [Ranked]) throws -> Void
    ) throws {
        let d = pins.d, config = tower?.config ?? TwoTowerConfig(d: d)
        let tasks = scorer.model.config.tasks
        let rounds = Int(try comm.allreduce(Int64((users.count + batchUsers - 1) / batchUsers), op: .max))
        let total = Int(try comm.allreduce(Int64(users.count)))
        var done = 0
        // Without a cut the feed is for the moment after the latest event.
        let now = cut == .max ? try UserEvents.latest(users, comm: comm) + 1 : cut
        let day = PinDailyStats.day(now)
        for round in 0..<rounds {
            let batch = Array(users.indices.dropFirst(round * batchUsers).prefix(batchUsers))
            var roundCandidates: [Int: [Int64]] = [:]
            for (b, list) in zip(batch, try candidatesOf(batch)) { roundCandidates[b] = list }
            var out = [Ranked](repeating: Ranked(), count: batch.count)
            var row: [Int64: Int] = [:], list: [Int64] = []
            func need(_ p: Int64) {
                if row[p] == nil {
                    row[p] = list.count
                    list.append(p)
                }
            }
            for b in batch {
                let u = users[b]
                for i in u.pins.indices where u.times[i] < cut && UserTowerState.reads(u.types[i]) { need(u.pins[i]) }
                for p in roundCandidates[b]! { need(p) }
            }
            let fetched = try pins.lookup(list, comm: comm)
            let shown = batch.flatMap { roundCandidates[$0]! }
            let pinStats = try stats.lookup(shown, days: shown.map { _ in day }, comm: comm)
            var at = 0
            for (slot, b) in batch.enumerated() {
                let u = users[b]
                let candidates = roundCandidates[b]!
                defer { at += candidates.count }
                var state = RankingUserState(config: config, profile: profiles[u.user])
                for i in u.pins.indices where u.times[i] < cut && UserTowerState.reads(u.types[i]) {
                    let r = row[u.pins[i]]!
                    guard fetched.known[r] else { continue }
                    state.absorb(
                        vector: fetched.vectors[r * d..<(r + 1) * d], category: fetched.categories[r], type: u.types[i],
                        time: u.times[i])
                }
                let time = now
                let user = state.features(at: time, model: tower)
                var data = FeedFeatures.emptyData(contentWidth: d)
                var kept: [Int] = []
                for (j, p) in candidates.enumerated() {
                    let r = row[p]!
                    guard fetched.known[r] else { continue }
                    FeedFeatures.append(
                        user: user,
                        pin: FeedFeatures.Pin(
                            category: fetched.categories[r], createdAt: fetched.createdAt[r],
                            vector: fetched.vectors[r * d..<(r + 1) * d], stats: pinStats[at + j]),
                        surface: Surface.home.rawValue, time: time, prior: stats.prior, into: &data)
                    kept.append(j)
                }
                guard !kept.isEmpty else { continue }
                let logits = try scorer.logits(data, range: 0..<kept.count)
                for (task, row) in logits.enumerated() {
                    if let i = row.firstIndex(where: { !$0.isFinite }) {
                        throw ArtifactError(
                            file: modelSource,
                            message:
                                "\(tasks[task]) score \(row[i]) for user \(u.user), pin \(candidates[kept[i]]): the model's parameters or the pin's features are not finite; nothing is published"
                        )
                    }
                }
                let combined = FeedScore.combine(
                    logits: logits, tasks: tasks, calibrators: calibrators, saveWeight: saveWeight,
                    closeupWeight: closeupWeight)
                var scored: [(j: Int, score: Float, save: Float, closeup: Float, row: Int)] = []
                for (i, j) in kept.enumerated() {
                    scored.append((j, combined[i].score, combined[i].pSave, combined[i].pCloseup, i))
                }
                scored.sort { ($0.score, -$0.j) > ($1.score, -$1.j) }
                scored = Array(scored.prefix(keep))
                var ranked = Ranked()
                ranked.pins = scored.map { candidates[$0.j] }
                ranked.score = scored.map(\.score)
                ranked.pSave = scored.map(\.save)
                ranked.pCloseup = scored.map(\.closeup)
                let f = data.fields, w = data.denseWidth
                for s in scored {
                    ranked.ids += data.ids[s.row * f..<(s.row + 1) * f]
                    ranked.dense += data.dense[s.row * w..<(s.row + 1) * w]
                    ranked.content += data.content[s.row * d..<(s.row + 1) * d]
                }
                var embeddings: [Float] = [], categories: [Int32] = []
                for p in ranked.pins {
                    let r = row[p]!
                    embeddings += fetched.vectors[r * d..<(r + 1) * d]
                    categories.append(fetched.categories[r])
                }
                ranked.feed = rerank.order(
                    scores: ranked.score, categories: categories, embeddings: embeddings, d: d, k: k)
                if freshSlots > 0 {
                    let fresh = ranked.pins.indices.filter {
                        fetched.createdAt[row[ranked.pins[$0]]!] >= now - freshWindow
                    }
                    ranked.feed = Self.withFreshSlots(ranked.feed, fresh: fresh, slots: freshSlots, k: k)
                }
                out[slot] = ranked
            }
            try consume(batch, out)
            done += Int(try comm.allreduce(Int64(batch.count)))
            progress(done, total)
        }
    }
}

extension FeedRanking {
    /// The ranker of `ranker train --data` in the file `ranker`, checked against `pins` (a
    /// DCN-v2 ranker over PinSage vectors of their width, trained on their embedding version
    /// and on `FeedFeatures.version`), with the two-tower run at `userModel` for the tower
    /// score (nil: none).
    ///
    /// - Throws: `ArtifactError` naming the file and what differs.
    public static func load(ranker: String, pins: PinFeatureTable, userModel: URL?) throws -> FeedRanking {
        let (config, model, calibrators) = try RankerArtifact.load(ranker)
        guard let net = model as? RankerModel<Float>, config.contentWidth == pins.d else {
            throw ArtifactError(
                file: ranker,
                message:
                    "expected a DCN-v2 ranker over PinSage vectors of width \(pins.d) (`ranker train --data`), found \(config.architecture.rawValue) with content width \(config.contentWidth)"
            )
        }
        try RankerArtifact.check(
            ranker, expected: .init(embeddingVersion: pins.embeddingVersion, featureVersion: FeedFeatures.version))
        let tower = try userModel.map {
            try TwoTowerModel<Float>.load(run: $0, embeddingVersion: pins.embeddingVersion, d: pins.d).model
        }
        var ranking = FeedRanking(model: net, calibrators: calibrators, tower: tower)
        ranking.modelSource = ranker
        return ranking
    }

    /// Ranks this rank's `users` round by round, `candidates(indices)` giving the candidates of
    /// a round's users (indices into `users`, in that order; e.g. `CandidateSource.rows`), and
    /// appends each round's feeds, with every pin's channel mask, to `shard` before the next
    /// round (collective): memory holds one round's candidates, features and results. Returns
    /// every user's feeds without their features when `keepFeeds` (for the evaluation; users ×
    /// (k + `keep`) pins and scores), otherwise feeds of no users.
    public func rank(
        users: [UserEvents], profiles: [Int64: UserProfile], candidates: ([Int]) throws -> Candidates,
        pins: PinFeatureTable, stats: PinDailyStats, at cut: Int64, into shard: RankedFeeds.ShardWriter,
        keepFeeds: Bool, comm: Communicator, progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> RankedFeeds {
        var kept = RankedFeeds(k: k, contentWidth: pins.d)
        kept.keepsFeatures = false
        var current = Candidates(channelNames: [])
        try rank(
            users: users, profiles: profiles,
            candidates: { batch in
                current = try candidates(batch)
                precondition(current.users.count == batch.count, "rank: candidates of another round")
                return batch.indices.map { Array(current.pins(ofUser: $0)) }
            }, pins: pins, stats: stats, at: cut, comm: comm, progress: progress
        ) { batch, ranked in
            var round = RankedFeeds(k: k, contentWidth: pins.d)
            for (b, (i, r)) in zip(batch, ranked).enumerated() {
                var channelOf: [Int64: UInt8] = [:]
                for j in Int(current.offsets[b])..<Int(current.offsets[b + 1]) {
                    channelOf[current.pins[j]] = current.channels[j]
                }
                round.append(user: users[i].user, r, channelOf: channelOf)
                if keepFeeds { kept.append(user: users[i].user, r, channelOf: channelOf) }
            }
            try shard.append(round)
        }
        return kept
    }

    /// Collective: the feed policies judged side by side on this rank's `users` after `cut`
    /// (`FeedEvaluation`: logged HR / recall of the held-out saves and, with a world, the
    /// expected saves under the truth and the oracle row): popularity, each channel's own list,
    /// the merged candidates unranked, the ranked candidates without and with the re-rank.
    /// `candidates` is aligned with `users` (`Candidates` rows), `feeds` likewise. With `pins`,
    /// a second table: each policy's shape (`FeedShape`).
    public static func report(
        users: [UserEvents], candidates: Candidates, feeds: RankedFeeds, k: Int, cut: Int64, world: WorldGenerator?,
        holdoutDays: Int, pins: PinFeatureTable? = nil, freshDays: Int = 2, comm: Communicator
    ) throws -> String {
        let (rows, shape) = try reportRows(
            users: users, candidates: candidates, feeds: feeds, k: k, cut: cut, world: world, pins: pins,
            freshDays: freshDays, comm: comm)
        var table = FeedEvaluation.markdown(rows, k: k, holdoutDays: holdoutDays)
        if let shape { table += "\n\n" + FeedShape.markdown(shape, freshDays: freshDays) }
        return table
    }

    /// Collective: the rows of `report`'s tables (the shape rows when `pins` is given).
    public static func reportRows(
        users: [UserEvents], candidates: Candidates, feeds: RankedFeeds, k: Int, cut: Int64, world: WorldGenerator?,
        pins: PinFeatureTable? = nil, freshDays: Int = 2, comm: Communicator
    ) throws -> (rows: [FeedEvaluation.Row], shape: [FeedShape.Row]?) {
        let popular = try FeedPrecompute.mostSaved(users, before: cut, m: k + 1_000, comm: comm)
        var policies: [(name: String, feeds: [[Int64]])] = [
            (
                "popularity (most saved)",
                users.map { u in
                    let seen = u.seen(before: cut)
                    return Array(popular.lazy.filter { !seen.contains($0) }.prefix(k))
                }
            )
        ]
        let w = candidates.channelNames.count
        for (c, name) in candidates.channelNames.enumerated() {
            policies.append(
                (
                    "\(name) channel alone",
                    users.indices.map { i in
                        let rows = Int(candidates.offsets[i])..<Int(candidates.offsets[i + 1])
                        return rows.filter { candidates.channelRanks[$0 * w + c] >= 0 }
                            .sorted { candidates.channelRanks[$0 * w + c] < candidates.channelRanks[$1 * w + c] }
                            .prefix(k).map { candidates.pins[$0] }
                    }
                ))
        }
        policies.append(
            ("merged candidates, unranked", users.indices.map { Array(candidates.pins(ofUser: $0).prefix(k)) }))
        policies.append(
            ("ranked (calibrated score), no re-rank", users.indices.map { Array(feeds.ranked(ofUser: $0).prefix(k)) }))
        policies.append(("ranked + diversity re-rank (published)", users.indices.map { feeds.feed(ofUser: $0) }))
        if let world {
            // Each user's merged candidates in the order of their true save probability (ties to
            // the smaller id); `quality` replaces every pin's latent quality when given.
            func trueOrder(quality: Double?) -> [[Int64]] {
                users.indices.map { i in
                    let truth = world.truth(ofUser: Int(users[i].user))
                    return candidates.pins(ofUser: i)
                        .map {
                            (
                                pin: $0,
                                p: world.expectedOutcomeProbabilities(
                                    truth, pin: Int($0), position: 0, quality: quality
                                )
                                .save
                            )
                        }
                        .sorted { ($0.p, -$0.pin) > ($1.p, -$1.pin) }.prefix(k).map(\.pin)
                }
            }
            // What the user's true interests alone give: every pin's quality at its mean.
            policies.append(("merged candidates by true interest, quality unknown", trueOrder(quality: 0)))
            // The ranker's ceiling: what a perfect ranker would publish from the same candidates.
            policies.append(("merged candidates in true order (the ranker's ceiling)", trueOrder(quality: nil)))
        }
        let evaluation = FeedEvaluation(k: k, world: world, cut: cut)
        let rows = try evaluation.evaluate(users: users, policies: policies, comm: comm)
        let shape = try pins.map {
            try FeedShape.measure(
                policies: policies, pins: $0, freshSince: cut - Int64(freshDays) * 86_400_000, comm: comm)
        }
        return (rows, shape)
    }
}

/// What a feed looks like beyond its saves: distinct categories per feed, the mean pairwise
/// cosine of its pins' PinSage vectors (intra-list similarity: lower is more diverse), the
/// share of the catalogue that some user's feed shows (coverage), and the share of fresh pins.
public enum FeedShape {
    public struct Row: Sendable {
        public var policy: String
        public var categoriesPerFeed: Double, intraListCosine: Double, coverage: Double, freshShare: Double
    }

    /// Collective: one row per policy (each rank passes its users' feeds). Coverage counts the
    /// distinct pins over every rank's feeds (at the pins' owners) over the pins of `pins`.
    public static func measure(
        policies: [(name: String, feeds: [[Int64]])], pins: PinFeatureTable, freshSince: Int64, comm: Communicator
    ) throws -> [Row] {
        let d = pins.d
        let catalogue = Double(try comm.allreduce(Int64(pins.table.ids.count)))
        var out: [Row] = []
        for policy in policies {
            let all = policy.feeds.flatMap { $0 }
            let fetched = try pins.lookup(all, comm: comm)
            var sums = [0.0, 0.0, 0.0, 0.0, 0.0]  // categories, cosine, pairs users, fresh, pins
            var at = 0
            for feed in policy.feeds {
                defer { at += feed.count }
                guard !feed.isEmpty else { continue }
                sums[0] += Double(Set(fetched.categories[at..<at + feed.count]).count)
                var unit = [[Float]]()
                for i in at..<at + feed.count {
                    let v = fetched.vectors[i * d..<(i + 1) * d]
                    let norm = v.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
                    unit.append(v.map { norm > 0 ? $0 / norm : 0 })
                    if fetched.createdAt[i] >= freshSince { sums[3] += 1 }
                }
                if unit.count > 1 {
                    var cos = 0.0
                    for a in 0..<unit.count {
                        for b in (a + 1)..<unit.count {
                            var dot: Float = 0
                            for j in 0..<d { dot += unit[a][j] * unit[b][j] }
                            cos += Double(dot)
                        }
                    }
                    sums[1] += cos / Double(unit.count * (unit.count - 1) / 2)
                    sums[2] += 1
                }
                sums[4] += Double(feed.count)
            }
            let users = Double(policy.feeds.filter { !$0.isEmpty }.count)
            var totals = sums + [users]
            try comm.allreduce(&totals)
            let distinct = try distinctCount(all, comm: comm)
            out.append(
                Row(
                    policy: policy.name, categoriesPerFeed: totals[0] / max(totals[5], 1),
                    intraListCosine: totals[1] / max(totals[2], 1), coverage: Double(distinct) / max(catalogue, 1),
                    freshShare: totals[3] / max(totals[4], 1)))
        }
        return out
    }

    /// Distinct pins over every rank's `pins` (counted at the owners). Collective.
    static func distinctCount(_ pins: [Int64], comm: Communicator) throws -> Int64 {
        var outgoing = [[Int64]](repeating: [], count: comm.size)
        for p in Set(pins) { outgoing[Sharding.owner(p, ranks: comm.size)].append(p) }
        let (received, _) = try comm.alltoallv(outgoing.flatMap { $0 }, sendCounts: outgoing.map(\.count))
        return try comm.allreduce(Int64(Set(received).count))
    }

    public static func markdown(_ rows: [Row], freshDays: Int) -> String {
        var out = [
            "| feed | categories per feed | intra-list cosine (PinSage) | catalogue coverage | fresh share (last \(freshDays) days) |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in rows {
            out.append(
                String(
                    format: "| %@ | %.2f | %.3f | %.4f | %.4f |", r.policy, r.categoriesPerFeed, r.intraListCosine,
                    r.coverage, r.freshShare))
        }
        return out.joined(separator: "\n")
    }
}

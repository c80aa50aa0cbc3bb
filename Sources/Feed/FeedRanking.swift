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
    }

    /// Ranks each of this rank's `users`' `candidates` at `cut` (collective).
    public func rank(
        users: [UserEvents], profiles: [Int64: UserProfile], candidates: [[Int64]], pins: PinFeatureTable,
        stats: PinDailyStats, at cut: Int64, comm: Communicator, progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> [Ranked] {
        precondition(candidates.count == users.count)
        let d = pins.d, config = tower?.config ?? TwoTowerConfig(d: d)
        let tasks = scorer.model.config.tasks
        let saveTask = tasks.firstIndex(of: "save") ?? 0, closeupTask = tasks.firstIndex(of: "closeup") ?? 0
        var out = [Ranked](repeating: Ranked(), count: users.count)
        let rounds = Int(try comm.allreduce(Int64((users.count + batchUsers - 1) / batchUsers), op: .max))
        let total = Int(try comm.allreduce(Int64(users.count)))
        var done = 0
        // Without a cut the feed is for the moment after the latest event.
        let now = cut == .max ? try UserEvents.latest(users, comm: comm) + 1 : cut
        let day = PinDailyStats.day(now)
        for round in 0..<rounds {
            let batch = Array(users.indices.dropFirst(round * batchUsers).prefix(batchUsers))
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
                for p in candidates[b] { need(p) }
            }
            let fetched = try pins.lookup(list, comm: comm)
            let shown = batch.flatMap { candidates[$0] }
            let pinStats = try stats.lookup(shown, days: shown.map { _ in day }, comm: comm)
            var at = 0
            for b in batch {
                let u = users[b]
                defer { at += candidates[b].count }
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
                for (j, p) in candidates[b].enumerated() {
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
                func probability(_ task: Int, _ i: Int) -> Float {
                    let z = Double(logits[task][i])
                    return Float(calibrators[tasks[task]].map { $0(z) } ?? 1 / (1 + exp(-z)))
                }
                var scored: [(j: Int, score: Float, save: Float, closeup: Float)] = []
                for (i, j) in kept.enumerated() {
                    let s = probability(saveTask, i), c = probability(closeupTask, i)
                    scored.append((j, Float(saveWeight) * s + Float(closeupWeight) * c, s, c))
                }
                scored.sort { ($0.score, -$0.j) > ($1.score, -$1.j) }
                scored = Array(scored.prefix(keep))
                var ranked = Ranked()
                ranked.pins = scored.map { candidates[b][$0.j] }
                ranked.score = scored.map(\.score)
                ranked.pSave = scored.map(\.save)
                ranked.pCloseup = scored.map(\.closeup)
                var embeddings: [Float] = [], categories: [Int32] = []
                for p in ranked.pins {
                    let r = row[p]!
                    embeddings += fetched.vectors[r * d..<(r + 1) * d]
                    categories.append(fetched.categories[r])
                }
                ranked.feed = rerank.order(
                    scores: ranked.score, categories: categories, embeddings: embeddings, d: d, k: k)
                out[b] = ranked
            }
            done += Int(try comm.allreduce(Int64(batch.count)))
            progress(done, total)
        }
        return out
    }
}

extension FeedRanking {
    /// Collective: the feed policies judged side by side on this rank's `users` after `cut`
    /// (`FeedEvaluation`: logged HR / recall of the held-out saves and, with a world, the
    /// expected saves under the truth and the oracle row): popularity, each channel's own list,
    /// the merged candidates unranked, the ranked candidates without and with the re-rank.
    /// `candidates` is aligned with `users` (`Candidates` rows), `feeds` likewise.
    public static func report(
        users: [UserEvents], candidates: Candidates, feeds: RankedFeeds, k: Int, cut: Int64, world: WorldGenerator?,
        holdoutDays: Int, comm: Communicator
    ) throws -> String {
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
        let evaluation = FeedEvaluation(k: k, world: world, cut: cut)
        let rows = try evaluation.evaluate(users: users, policies: policies, comm: comm)
        return FeedEvaluation.markdown(rows, k: k, holdoutDays: holdoutDays)
    }
}

import Artifacts
import Collective
import EventData
import Events
import Foundation

/// Feed policies judged side by side on the same users after a time cut:
/// - logged: HR@k (users with a held-out save who get at least one of them in their feed) and
///   recall@k (held-out saves in the feed) over the saves at or after the cut;
/// - truth (synthetic world only): the expected saves per user of the k-slot feed, Σ over slots
///   of the true save probability at the slot's position for the user's next session
///   (`WorldGenerator.expectedOutcomeProbabilities`), and recall@k of the oracle set (the k
///   pins with the highest true save probability, visible at the cut and not seen before it).
/// The oracle feed (the oracle set in order) is the ceiling of expected saves: a pin's expected
/// save probability is its examination at the slot times a factor of the pin alone.
public struct FeedEvaluation {
    /// One policy's figures, averaged over users.
    public struct Row: Sendable {
        public var policy: String
        /// Users with at least one held-out save, and their HR@k, recall@k and NDCG@k (binary
        /// gains: each held-out save in the feed counts 1 / log2(slot + 2), over the ideal DCG).
        public var usersWithSaves: Int, hitRate: Double, recall: Double, ndcg: Double
        /// Users evaluated under the truth, expected saves per user, recall of the oracle set
        /// (nil without a world).
        public var users: Int, expectedSaves: Double?, oracleRecall: Double?
    }

    public let k: Int
    /// The world the data was generated from (nil for real data: logged metrics only).
    public let world: WorldGenerator?
    /// The time cut (ms): feeds are built from the events before it, judged on those after.
    public let cut: Int64
    /// The pins visible at the cut, ranked per topic for the oracle (built once).
    let ranking: WorldGenerator.OracleRanking?

    /// An evaluation of `k`-pin feeds after `cut`; with a `world`, the oracle's pin ranking at
    /// the cut's day is built here, once (memory: one Int per visible pin).
    public init(k: Int, world: WorldGenerator?, cut: Int64) {
        self.k = k
        self.world = world
        self.cut = cut
        ranking = world.map { w in
            let p = w.parameters
            let day = Int(max(0, min(Int64(p.days), (cut - p.startMs) / WorldParameters.dayMs)))
            return WorldGenerator.OracleRanking(world: w, day: day)
        }
    }

    /// The world parameters a `mosaic generate` run records in its manifest (nil otherwise).
    public static func world(of run: PublishedRun) -> WorldGenerator? {
        guard let json = run.manifest.config["world"],
            let p = try? JSONDecoder().decode(WorldParameters.self, from: Data(json.utf8))
        else { return nil }
        return WorldGenerator(p)
    }

    /// The oracle feed of each user: the `count` pins with the highest true save probability,
    /// visible at the cut and not seen before it, best first ([] per user without a world).
    public func oracleFeeds(_ users: [UserEvents], count: Int) -> [[Int64]] {
        guard let world, let ranking else { return users.map { _ in [] } }
        return users.map { u in
            world.oracleTopPins(
                world.truth(ofUser: Int(u.user)), ranking: ranking, count: count, excluding: u.seen(before: cut))
        }
    }

    /// Collective: the rows of `policies` (name, each local user's feed aligned with `users`),
    /// then, with a world, the oracle feed's row (the ceiling of expected saves).
    public func evaluate(
        users: [UserEvents], policies: [(name: String, feeds: [[Int64]])], comm: Communicator
    ) throws -> [Row] {
        let oracle = oracleFeeds(users, count: k)
        let policies = world == nil ? policies : policies + [("oracle (true save probability)", oracle)]
        // Per policy: [users with saves, held-out saves, users hit, saves hit, expected saves, oracle hits, NDCG].
        let w = 7
        var sums = [Double](repeating: 0, count: w * policies.count + 1)
        for (i, u) in users.enumerated() {
            let later = u.saved(from: cut)
            let truth = world?.truth(ofUser: Int(u.user))
            let oracleSet = Set(oracle[i])
            if world != nil { sums[w * policies.count] += 1 }
            for (p, policy) in policies.enumerated() {
                let feed = Array(policy.feeds[i].filter { $0 >= 0 }.prefix(k))
                if !later.isEmpty {
                    let hits = Set(feed).intersection(later).count
                    sums[w * p] += 1
                    sums[w * p + 1] += Double(later.count)
                    sums[w * p + 2] += hits > 0 ? 1 : 0
                    sums[w * p + 3] += Double(hits)
                    var dcg = 0.0, ideal = 0.0
                    for (slot, pin) in feed.enumerated() where later.contains(pin) { dcg += 1 / log2(Double(slot) + 2) }
                    for slot in 0..<min(k, later.count) { ideal += 1 / log2(Double(slot) + 2) }
                    sums[w * p + 6] += dcg / ideal
                }
                if let world, let truth {
                    for (slot, pin) in feed.enumerated() {
                        sums[w * p + 4] += world.expectedOutcomeProbabilities(truth, pin: Int(pin), position: slot).save
                    }
                    sums[w * p + 5] += Double(Set(feed).intersection(oracleSet).count) / Double(max(1, oracleSet.count))
                }
            }
        }
        try comm.allreduce(&sums, op: .sum)
        let evaluated = sums[w * policies.count]
        return policies.enumerated().map { p, policy in
            Row(
                policy: policy.name, usersWithSaves: Int(sums[w * p]),
                hitRate: sums[w * p + 2] / max(sums[w * p], 1), recall: sums[w * p + 3] / max(sums[w * p + 1], 1),
                ndcg: sums[w * p + 6] / max(sums[w * p], 1), users: Int(evaluated),
                expectedSaves: world == nil ? nil : sums[w * p + 4] / max(evaluated, 1),
                oracleRecall: world == nil ? nil : sums[w * p + 5] / max(evaluated, 1))
        }
    }

    /// One channel's candidate recall of the oracle set at each size.
    public struct CandidateRow: Sendable {
        public var channel: String
        /// Recall of the oracle set at each of `sizes` (same order).
        public var recall: [Double]
        /// Recall of the held-out saves at each of `sizes`, over the users with held-out saves.
        public var savedRecall: [Double]
        /// Mean candidates per user at the largest size.
        public var meanCandidates: Double
    }

    /// Collective: recall of the oracle set (each user's `oracleCount` pins with the highest
    /// true save probability, visible at the cut and not seen before it) and of the held-out
    /// saves (pins saved at or after the cut) by the first `n` candidates of each channel, for
    /// every `n` in `sizes`, averaged over users. Needs a world.
    public func candidateRecall(
        users: [UserEvents], channels: [(name: String, candidates: [[Int64]])], sizes: [Int], oracleCount: Int = 100,
        comm: Communicator
    ) throws -> [CandidateRow] {
        guard world != nil else { return [] }
        let oracleSets = oracleFeeds(users, count: oracleCount)
        let width = 2 * sizes.count + 1  // oracle recall per size, saved recall per size, candidates
        var sums = [Double](repeating: 0, count: channels.count * width + 2)
        for i in users.indices {
            let oracle = Set(oracleSets[i]), saved = users[i].saved(from: cut)
            if !oracle.isEmpty { sums[sums.count - 2] += 1 }
            if !saved.isEmpty { sums[sums.count - 1] += 1 }
            for (c, channel) in channels.enumerated() {
                let list = channel.candidates[i]
                for (s, n) in sizes.enumerated() {
                    let top = list.prefix(n)
                    if !oracle.isEmpty {
                        sums[c * width + s] += Double(oracle.intersection(top).count) / Double(oracle.count)
                    }
                    if !saved.isEmpty {
                        sums[c * width + sizes.count + s] += Double(saved.intersection(top).count) / Double(saved.count)
                    }
                }
                if !oracle.isEmpty { sums[c * width + 2 * sizes.count] += Double(min(list.count, sizes.max() ?? 0)) }
            }
        }
        try comm.allreduce(&sums, op: .sum)
        let n = max(sums[sums.count - 2], 1), withSaves = max(sums[sums.count - 1], 1)
        return channels.enumerated().map { c, channel in
            CandidateRow(
                channel: channel.name, recall: sizes.indices.map { sums[c * width + $0] / n },
                savedRecall: sizes.indices.map { sums[c * width + sizes.count + $0] / withSaves },
                meanCandidates: sums[c * width + 2 * sizes.count] / n)
        }
    }

    /// Candidate rows as a markdown table.
    public static func markdown(_ rows: [CandidateRow], sizes: [Int], oracleCount: Int) -> String {
        var out = [
            "| channel | " + sizes.map { "oracle-set recall@\($0)" }.joined(separator: " | ") + " | "
                + sizes.map { "held-out saves recall@\($0)" }.joined(separator: " | ") + " | candidates / user |",
            "|---|" + String(repeating: "---:|", count: 2 * sizes.count + 1),
        ]
        for r in rows {
            out.append(
                "| \(r.channel) | "
                    + (r.recall + r.savedRecall).map { String(format: "%.4f", $0) }.joined(separator: " | ")
                    + String(format: " | %.1f |", r.meanCandidates))
        }
        out.append("")
        out.append(
            "(the oracle set: each user's \(oracleCount) pins with the highest true save probability, visible at the cut and not seen before it; held-out saves: the pins each user saved after the cut, over the users who saved any)"
        )
        return out.joined(separator: "\n")
    }

    /// The rows as a markdown table.
    public static func markdown(_ rows: [Row], k: Int, holdoutDays: Int) -> String {
        var out = [
            "| feed (last \(holdoutDays) day(s) held out) | users with held-out saves | HR@\(k) | recall@\(k) | expected saves / user (truth) | oracle-set recall@\(k) | NDCG@\(k) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows {
            out.append(
                String(
                    format: "| %@ | %d | %.4f | %.4f | %@ | %@ | %.4f |", r.policy, r.usersWithSaves, r.hitRate,
                    r.recall, r.expectedSaves.map { String(format: "%.4f", $0) } ?? "–",
                    r.oracleRecall.map { String(format: "%.4f", $0) } ?? "–", r.ndcg))
        }
        return out.joined(separator: "\n")
    }
}

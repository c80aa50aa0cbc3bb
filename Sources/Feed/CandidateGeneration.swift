import Collective
import Events
import Foundation

/// The funnel's first stage for this rank's users: every channel's candidates, then the merge.
///
/// Channels, in merge order: content (multi-interest IVF over content embeddings), trending
/// (per category), and when given: fresh (content similarity among pins created in the last days),
/// Pixie (walk neighbours), PinSage (multi-interest IVF over the
/// night's PinSage vectors), two-tower (each user's vector in the PinSage index) and user–user
/// CF (pins recently saved by the nearest users in two-tower space). Seen pins
/// are left out of every channel. Collective.
public struct CandidateGeneration: Sendable {
    /// Retrieval settings (interests, recent, nprobe, rounds) shared by the multi-interest channels.
    public var settings = FeedPrecompute()
    /// Candidates per channel, and merged candidates per user.
    public var pool = 500, count = 1_000

    public var content: ContentChannel
    public var trending: TrendingChannel
    public var walks: WalkChannel? = nil
    public var pinsage: ContentChannel? = nil
    /// The content channel over fresh pins only (created in the last days before the cut: no
    /// engagement, no graph edges yet).
    public var fresh: ContentChannel? = nil
    /// Needs `pinsage`: the user vectors search its index.
    public var userVectors: UserVectorChannel? = nil
    /// Needs `userVectors`: pins recently saved by the nearest users.
    public var userCF: UserCFChannel? = nil
    /// Merge weight of each channel by name (`Candidates.merge`); a channel not named weighs 1.
    /// The defaults were tuned on the validation world (seed 43) for the merged set's recall of
    /// the oracle set at 1,000 (docs/retrieval.md).
    public var weights: [String: Double] = [
        "content": 2, "trending": 4, "pixie": 1, "fresh": 0.25, "pinsage": 0.5, "two-tower": 4, "user-cf": 0.5,
    ]
    /// This rank's users' countries and devices (trending's cold start).
    public var profiles: [Int64: UserProfile] = [:]

    public init(content: ContentChannel, trending: TrendingChannel) {
        self.content = content
        self.trending = trending
    }

    /// Every channel's candidates per user and the merged candidates.
    public struct Result: Sendable {
        /// Channel names in merge order (the bit order of `Candidates.channels`).
        public var names: [String]
        /// `lists[c][u]`: channel c's candidates for user u, best first.
        public var lists: [[[Int64]]]
        public var merged: Candidates
        /// Seconds spent in each channel (this rank), by name.
        public var seconds: [String: Double]
    }

    /// Runs every channel for this rank's `users` on the events before `cut`, then merges.
    /// `progress(done, total)` reports the content/trending/Pixie pass (global user counts).
    public func run(
        users: [UserEvents], cut: Int64, comm: Communicator, progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> Result {
        precondition(userVectors == nil || pinsage != nil, "the two-tower channel searches the PinSage index")
        var job = settings
        job.k = min(pool, 50)
        job.pool = pool
        job.buildFeeds = false
        var seconds: [String: Double] = [:]
        var t = Date()
        let first = try job.run(
            channel: content, trending: trending, walks: walks, users: users, profiles: profiles, cut: cut, comm: comm,
            progress: progress)
        seconds["content+trending+pixie"] = Date().timeIntervalSince(t)
        var names = ["content", "trending"]
        var lists = [first.contentCandidates, first.trendingCandidates]
        if walks != nil {
            names.append("pixie")
            lists.append(first.walkCandidates)
        }
        if let fresh {
            t = Date()
            names.append("fresh")
            lists.append(try job.run(channel: fresh, users: users, cut: cut, comm: comm).contentCandidates)
            seconds["fresh"] = Date().timeIntervalSince(t)
        }
        if let pinsage {
            t = Date()
            names.append("pinsage")
            lists.append(try job.run(channel: pinsage, users: users, cut: cut, comm: comm).contentCandidates)
            seconds["pinsage"] = Date().timeIntervalSince(t)
            if let userVectors {
                t = Date()
                names.append("two-tower")
                lists.append(
                    try userVectors.candidates(
                        users: users, index: pinsage.index, k: pool, nprobe: settings.nprobe,
                        batchUsers: settings.batchUsers,
                        exclude: { users[$0].excluded(before: cut, seenDays: settings.seenDays) }, comm: comm))
                seconds["two-tower"] = Date().timeIntervalSince(t)
                if let userCF {
                    t = Date()
                    names.append("user-cf")
                    lists.append(
                        try userCF.candidates(
                            users: users, vectors: userVectors, cut: cut, k: pool, batchUsers: settings.batchUsers,
                            exclude: { users[$0].excluded(before: cut, seenDays: settings.seenDays) }, comm: comm))
                    seconds["user-cf"] = Date().timeIntervalSince(t)
                }
            }
        }
        var merged = Candidates(channelNames: names)
        let w = names.map { weights[$0] ?? 1 }
        for (i, u) in users.enumerated() {
            merged.append(user: u.user, lists: lists.map { $0[i] }, count: count, weights: w)
        }
        return Result(names: names, lists: lists, merged: merged, seconds: seconds)
    }
}

import Collective
import EventData
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
    /// The PinSage channel's interests: clusters of the engaged pins' PinSage vectors
    /// (PinnerSage) instead of the most engaged categories.
    public var pinsageClusters = false
    /// Merge weight of each channel by name (`Candidates.merge`); a channel not named weighs 1.
    /// The defaults were tuned on the validation world (seed 43) for the merged set's recall of
    /// the oracle set at 1,000 (docs/retrieval.md).
    public var weights: [String: Double] = [
        "content": 2, "trending": 8, "pixie": 1, "fresh": 0.25, "pinsage": 0.5, "two-tower": 4, "user-cf": 0.5,
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
        /// `lists[c][u]`: channel c's candidates for user u, best first (empty without
        /// `keepLists`).
        public var lists: [[[Int64]]]
        public var merged: Candidates
        /// Seconds spent in each channel (this rank), by name.
        public var seconds: [String: Double]
    }

    /// Users per rank per outer round: every channel runs on one round's users, whose lists are
    /// merged before the next round, so a rank holds one round's channel lists, not all users'.
    public var roundUsers = 4096

    /// Runs every channel for this rank's `users` on the events before `cut`, merging round by
    /// round (`roundUsers`). `keepLists` keeps every channel's lists in the result (for the
    /// evaluation; memory: channels × pool per user). `progress(done, total)` runs after each
    /// round (global user counts). Collective.
    public func run(
        users: [UserEvents], cut: Int64, keepLists: Bool = false, comm: Communicator,
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> Result {
        precondition(userVectors == nil || pinsage != nil, "the two-tower channel searches the PinSage index")
        var job = settings
        job.k = min(pool, 50)
        job.pool = pool
        job.buildFeeds = false
        var clustered = job
        clustered.clusterInterests = pinsageClusters
        var names = ["content", "trending"]
        if walks != nil { names.append("pixie") }
        if fresh != nil { names.append("fresh") }
        if pinsage != nil { names.append("pinsage") }
        if userVectors != nil { names.append("two-tower") }
        if userCF != nil && userVectors != nil { names.append("user-cf") }
        var seconds: [String: Double] = [:]
        var t = Date()
        let cf = try userVectors.flatMap { vectors in
            try userCF?.prepare(users: users, vectors: vectors, cut: cut, comm: comm)
        }
        if userCF != nil && userVectors != nil { seconds["user-cf", default: 0] += Date().timeIntervalSince(t) }
        var merged = Candidates(channelNames: names)
        var kept = [[[Int64]]](repeating: [], count: keepLists ? names.count : 0)
        let w = names.map { weights[$0] ?? 1 }
        let rounds = Int(try comm.allreduce(Int64((users.count + roundUsers - 1) / roundUsers), op: .max))
        let total = Int(try comm.allreduce(Int64(users.count)))
        var done = 0
        for round in 0..<rounds {
            let part = Array(users.dropFirst(round * roundUsers).prefix(roundUsers))
            // The pins every channel leaves out, once per user.
            let seen = part.map { $0.excluded(before: cut, seenDays: settings.seenDays) }
            func exclude(_ i: Int) -> Set<Int64> { seen[i] }
            t = Date()
            let first = try job.run(
                channel: content, trending: trending, walks: walks, users: part, profiles: profiles, excluded: seen,
                cut: cut, comm: comm)
            seconds["content+trending+pixie", default: 0] += Date().timeIntervalSince(t)
            var lists = [first.contentCandidates, first.trendingCandidates]
            if walks != nil { lists.append(first.walkCandidates) }
            if let fresh {
                t = Date()
                lists.append(
                    try job.run(channel: fresh, users: part, excluded: seen, cut: cut, comm: comm).contentCandidates)
                seconds["fresh", default: 0] += Date().timeIntervalSince(t)
            }
            if let pinsage {
                t = Date()
                lists.append(
                    try clustered.run(channel: pinsage, users: part, excluded: seen, cut: cut, comm: comm)
                        .contentCandidates)
                seconds["pinsage", default: 0] += Date().timeIntervalSince(t)
                if let userVectors {
                    t = Date()
                    lists.append(
                        try userVectors.candidates(
                            users: part, index: pinsage.index, k: pool, nprobe: settings.nprobe,
                            batchUsers: settings.batchUsers, exclude: exclude, comm: comm))
                    seconds["two-tower", default: 0] += Date().timeIntervalSince(t)
                    if let userCF {
                        t = Date()
                        lists.append(
                            try userCF.candidates(
                                users: part, prepared: cf, k: pool, batchUsers: settings.batchUsers, exclude: exclude,
                                comm: comm))
                        seconds["user-cf", default: 0] += Date().timeIntervalSince(t)
                    }
                }
            }
            t = Date()
            for (i, u) in part.enumerated() {
                merged.append(user: u.user, lists: lists.map { $0[i] }, count: count, weights: w)
            }
            seconds["merge", default: 0] += Date().timeIntervalSince(t)
            if keepLists { for c in lists.indices { kept[c] += lists[c] } }
            done += Int(try comm.allreduce(Int64(part.count)))
            progress(done, total)
        }
        return Result(names: names, lists: kept, merged: merged, seconds: seconds)
    }
}

extension CandidateGeneration {
    /// Where the channels come from: the dataset, and the night's runs for the optional ones.
    public struct Inputs: Sendable {
        public var world: DatasetReader
        /// Roots of a walks run (Pixie), a PinSage embeddings run and its index run (PinSage),
        /// a user-vectors run over those embeddings (two-tower, and user–user CF).
        public var walks: URL? = nil, pinsageEmbeddings: URL? = nil, pinsageIndex: URL? = nil, userVectors: URL? = nil
        /// Fresh channel window in days (0: off); user–user CF neighbours (0: off).
        public var freshDays = 2, cfNeighbours = 100
        /// Trending window in days.
        public var trendingDays = 14

        public init(world: DatasetReader) { self.world = world }
    }

    /// Builds every channel for this rank's `users` at `cut` (collective): the content index
    /// over the pins created before the cut, trending with this rank's users' `profiles`, and
    /// the optional channels `inputs` names.
    ///
    /// - Throws: `ArtifactError` naming the file when a run is missing or belongs to other
    ///   embeddings (see `ContentChannel.load`, `UserVectorChannel.load`).
    public static func prepare(
        inputs: Inputs, users: [UserEvents], profiles: [Int64: UserProfile], cut: Int64, pool: Int,
        comm: Communicator
    ) throws -> CandidateGeneration {
        // Only pins created before the cut can be candidates; the fresh ones get their own index.
        let horizon = cut == .max ? try UserEvents.latest(users, comm: comm) + 1 : cut
        let content = try ContentChannel.build(world: inputs.world, created: Int64.min..<horizon, comm: comm)
        let trending = try TrendingChannel.build(
            users: users, profiles: profiles, cut: cut, days: inputs.trendingDays, perCategory: pool, content: content,
            comm: comm)
        var generation = CandidateGeneration(content: content, trending: trending)
        generation.pool = pool
        generation.profiles = profiles
        if inputs.freshDays > 0 {
            generation.fresh = try ContentChannel.build(
                world: inputs.world, created: (horizon - Int64(inputs.freshDays) * 86_400_000)..<horizon, comm: comm)
        }
        generation.walks = try inputs.walks.map { try WalkChannel.load(root: $0, comm: comm) }
        if let embeddings = inputs.pinsageEmbeddings, let index = inputs.pinsageIndex {
            let pinsage = try ContentChannel.load(
                embeddings: embeddings, index: index, categoriesFrom: content, comm: comm)
            generation.pinsage = pinsage
            generation.userVectors = try inputs.userVectors.map {
                try UserVectorChannel.load(
                    root: $0, embeddingVersion: pinsage.embeddingVersion, d: pinsage.d, comm: comm)
            }
            if inputs.userVectors != nil, inputs.cfNeighbours > 0 {
                generation.userCF = UserCFChannel()
                generation.userCF?.neighbours = inputs.cfNeighbours
            }
        }
        return generation
    }
}

extension CandidateGeneration.Result {
    /// What each channel's name means, for reports.
    public static let labels = [
        "content": "content (multi-interest IVF)", "trending": "trending by category",
        "pixie": "pixie (walk neighbours)", "fresh": "fresh (content IVF over pins of the last days)",
        "pinsage": "pinsage (multi-interest IVF over PinSage vectors)",
        "two-tower": "two-tower (user vector in the PinSage index)", "user-cf": "user-cf (saves of the nearest users)",
    ]

    /// Collective: the markdown table of each channel's, the merged set's and popularity's
    /// recall of the oracle set and of the held-out saves at 100, `pool` and `count` candidates
    /// (`FeedEvaluation.candidateRecall`); popularity is the most saved pins before the cut that
    /// the user has not seen. Empty without a world's truth.
    public func evaluate(
        users: [UserEvents], cut: Int64, world: WorldGenerator, pool: Int, count: Int, seenDays: Int?,
        comm: Communicator
    ) throws -> String {
        let (rows, sizes) = try evaluateRows(
            users: users, cut: cut, world: world, pool: pool, count: count, seenDays: seenDays, comm: comm)
        return FeedEvaluation.markdown(rows, sizes: sizes, oracleCount: 100)
    }

    /// Collective: the rows of `evaluate`'s table and the sizes they are measured at.
    public func evaluateRows(
        users: [UserEvents], cut: Int64, world: WorldGenerator, pool: Int, count: Int, seenDays: Int?,
        comm: Communicator
    ) throws -> (rows: [FeedEvaluation.CandidateRow], sizes: [Int]) {
        let evaluation = FeedEvaluation(k: count, world: world, cut: cut)
        let sizes = Array(Set([100, pool, count].filter { $0 <= count })).sorted()
        let popular = try FeedPrecompute.mostSaved(users, before: cut, m: count + 200, comm: comm)
        let popularity = users.indices.map { i in
            let seen = users[i].excluded(before: cut, seenDays: seenDays)
            return Array(popular.lazy.filter { !seen.contains($0) }.prefix(count))
        }
        let channels =
            zip(names, lists).map { (Self.labels[$0] ?? $0, $1) } + [
                ("merged", users.indices.map { Array(merged.pins(ofUser: $0)) }),
                ("popularity (most saved, baseline)", popularity),
            ]
        return (try evaluation.candidateRecall(users: users, channels: channels, sizes: sizes, comm: comm), sizes)
    }
}

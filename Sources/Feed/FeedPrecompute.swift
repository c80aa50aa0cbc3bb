import Collective
import EventData
import Events
import Foundation
import Index

/// Precomputes the home feed of every user: per user, a multi-interest pool from the content
/// channel (one query per engaged category, slots in proportion to engagement, seen pins left
/// out), then the diversity re-rank picks the feed. Users stay on the rank that holds their
/// events; each round, every rank contributes up to `batchUsers` users' queries, the queries
/// are allgathered and searched against every rank's index shard (the index is sharded by pin,
/// so every query visits every shard), and each rank keeps its users' results. Per-rank memory:
/// its users' events + its index shard + one round of queries and results.
public struct FeedPrecompute: Sendable {
    /// Feed length, pool retrieved before the re-rank (0 = 4k), interests per user, engaged
    /// pins averaged into the queries, inverted lists probed, users per rank per round.
    public var k = 50, pool = 0, interests = 5, recent = 50, nprobe = 16, batchUsers = 256
    /// The last stage.
    public var rerank = DiversityRerank()
    /// Interests as clusters of the engaged pins' vectors (PinnerSage: medoids, slots by cluster
    /// size) instead of the most engaged categories.
    public var clusterInterests = false
    /// Pins shown in the last `seenDays` days before the cut are left out, and saved or hidden
    /// ones whenever; nil leaves out every pin seen before the cut.
    public var seenDays: Int? = nil

    public init() {}

    /// Keep every user's candidates per channel (`Feeds.contentCandidates`, …) for evaluation.
    public var keepCandidates = false
    /// Re-rank the pools into feeds; false stops after retrieval (candidates only; implies
    /// `keepCandidates`).
    public var buildFeeds = true
    /// Pool size actually used.
    public var poolSize: Int { max(k, pool == 0 ? 4 * k : pool) }

    /// Feeds of `users` (this rank's), built from events strictly before `cut`.
    public struct Feeds: Sendable {
        /// This rank's users and their feeds, (users.count × k) pin ids, −1 where a feed is
        /// shorter (too few unseen candidates or no engagement yet).
        public var users: [Int64], pins: [Int64]
        /// The same users' pools cut to k without the re-rank (for the evaluation's comparison).
        public var plain: [Int64]
        /// The trending channel's k candidates for the same users (empty without one).
        public var trending: [Int64] = []
        /// With `keepCandidates`: each user's candidates per channel, best first, up to the pool
        /// size: the content pool and the trending list (for the recall of each channel).
        public var contentCandidates: [[Int64]] = [], trendingCandidates: [[Int64]] = []
        /// With a walk channel and `keepCandidates`: the Pixie channel's candidates per user.
        public var walkCandidates: [[Int64]] = []

        /// One feed per user from the flat (users × k) `column` (`\.pins` or `\.plain`), padding
        /// dropped.
        public func userFeeds(k: Int, _ column: KeyPath<Feeds, [Int64]>) -> [[Int64]] {
            let flat = self[keyPath: column]
            return users.indices.map { i in flat[i * k..<(i + 1) * k].filter { $0 >= 0 } }
        }
    }

    /// Collective: every rank calls it with its own users. `excluded[i]`: the pins left out of
    /// user i's candidates when the caller has them already (nil: `UserEvents.excluded(before:
    /// cut, seenDays:)`). `progress(done, total)` is called on every rank after each round with
    /// global user counts.
    public func run(
        channel: ContentChannel, trending: TrendingChannel? = nil, walks: WalkChannel? = nil, users: [UserEvents],
        profiles: [Int64: UserProfile] = [:], excluded: [Set<Int64>]? = nil,
        cut: Int64, comm: Communicator, progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> Feeds {
        precondition(excluded == nil || excluded!.count == users.count)
        let d = channel.d, p = poolSize
        var feeds = Feeds(
            users: users.map(\.user), pins: [Int64](repeating: -1, count: users.count * k),
            plain: [Int64](repeating: -1, count: users.count * k))
        if trending != nil { feeds.trending = [Int64](repeating: -1, count: users.count * k) }
        let keepCandidates = keepCandidates || !buildFeeds
        if keepCandidates {
            feeds.contentCandidates = users.map { _ in [] }
            feeds.trendingCandidates = users.map { _ in [] }
            if walks != nil { feeds.walkCandidates = users.map { _ in [] } }
        }
        let rounds = Int(try comm.allreduce(Int64((users.count + batchUsers - 1) / batchUsers), op: .max))
        let total = Int(try comm.allreduce(Int64(users.count)))
        var done = 0
        for round in 0..<rounds {
            let batch = Array(users.indices.dropFirst(round * batchUsers).prefix(batchUsers))
            // Interests: the engaged pins' embeddings and categories.
            let engaged = batch.map { Array(users[$0].engaged(before: cut).suffix(recent)) }
            // Every channel leaves these out.
            let seen = batch.map { excluded?[$0] ?? users[$0].excluded(before: cut, seenDays: seenDays) }
            let (e, c) = try channel.lookupDistinct(engaged.flatMap { $0 }, comm: comm)
            if let walks {
                let lists = try walks.lookup(engaged.flatMap { $0 }, comm: comm)
                var at = 0
                for (b, pins) in engaged.enumerated() {
                    if keepCandidates {
                        feeds.walkCandidates[batch[b]] = WalkChannel.candidates(
                            engaged: pins, lists: Array(lists[at..<at + pins.count]), k: p, exclude: seen[b])
                    }
                    at += pins.count
                }
            }
            var queries: [Float] = [], owners: [(user: Int, engagement: [Int], b: Int)] = []
            var offset = 0
            for (b, pins) in engaged.enumerated() {
                if let trending {
                    let categories = Array(c[offset..<offset + pins.count])
                    let profile = profiles[users[batch[b]].user]
                    let list = trending.candidates(
                        engagedCategories: categories, k: k, exclude: seen[b], profile: profile)
                    for (slot, pin) in list.enumerated() { feeds.trending[batch[b] * k + slot] = pin }
                    if keepCandidates {
                        feeds.trendingCandidates[batch[b]] = trending.candidates(
                            engagedCategories: categories, k: p, exclude: seen[b], profile: profile)
                    }
                }
                let engagedVectors = Array(e[offset * d..<(offset + pins.count) * d])
                let top =
                    clusterInterests
                    ? ContentChannel.clusteredInterests(embeddings: engagedVectors, d: d, count: interests)
                    : ContentChannel.interests(
                        embeddings: engagedVectors, categories: Array(c[offset..<offset + pins.count]), d: d,
                        count: interests)
                offset += pins.count
                guard !top.categories.isEmpty else { continue }
                queries += top.queries
                owners.append((batch[b], top.engagement, b))
            }
            // Search every rank's queries against every shard; each rank merges only its own
            // queries' results. A query's share of the pool is at most the pool; it asks for
            // 1.25 × pool so that seen pins, filtered afterwards, leave enough. Measured on the
            // default world: the same candidates as 2 × pool, and 1.65× the users/s on 2 ranks.
            let want = p + p / 4
            let anyQueries = try comm.allreduce(Int64(queries.count), op: .max) > 0  // the same on every rank
            var dist: [Float] = [], labels: [Int64] = []
            if anyQueries {
                (dist, labels) = try channel.index.searchOwn(
                    queries, k: want, parameters: SearchParameters(nprobe: nprobe), comm: comm)
            }
            // Pools, then the candidates' embeddings for the re-rank.
            var pools: [[(pin: Int64, distance: Float, list: Int)]] = []
            var q = 0
            for owner in owners {
                var lists: [[(pin: Int64, distance: Float)]] = []
                for _ in owner.engagement {
                    var list: [(pin: Int64, distance: Float)] = []
                    for i in (q * want)..<((q + 1) * want) where labels[i] >= 0 { list.append((labels[i], dist[i])) }
                    lists.append(list)
                    q += 1
                }
                pools.append(
                    ContentChannel.interleave(
                        lists: lists, engagement: owner.engagement, k: p, exclude: seen[owner.b]))
            }
            if !buildFeeds {
                for (owner, pool) in zip(owners, pools) { feeds.contentCandidates[owner.user] = pool.map(\.pin) }
                done += Int(try comm.allreduce(Int64(batch.count)))
                progress(done, total)
                continue
            }
            let (pe, pc) = try channel.lookupDistinct(pools.flatMap { $0.map(\.pin) }, comm: comm)
            offset = 0
            for (owner, pool) in zip(owners, pools) {
                let n = pool.count
                let order = rerank.order(
                    scores: (0..<n).map { -Float($0) }, categories: Array(pc[offset..<offset + n]),
                    embeddings: Array(pe[offset * d..<(offset + n) * d]), d: d, k: k)
                for (slot, j) in order.enumerated() { feeds.pins[owner.user * k + slot] = pool[j].pin }
                for slot in 0..<min(k, n) { feeds.plain[owner.user * k + slot] = pool[slot].pin }
                if keepCandidates { feeds.contentCandidates[owner.user] = pool.map(\.pin) }
                offset += n
            }
            done += Int(try comm.allreduce(Int64(batch.count)))
            progress(done, total)
        }
        return feeds
    }

    /// The `m` pins saved most often strictly before `cut` over all ranks' users (ties: smaller
    /// id): save counts are sent to the pin's owner rank (pin mod ranks), each owner keeps its
    /// top m, and the owners' lists are merged. The popularity baseline. Collective.
    public static func mostSaved(_ users: [UserEvents], before cut: Int64, m: Int, comm: Communicator) throws -> [Int64]
    {
        var counts: [Int64: Int64] = [:]
        for u in users {
            for i in u.pins.indices where u.times[i] < cut && u.types[i] == EventType.save.rawValue {
                counts[u.pins[i], default: 0] += 1
            }
        }
        var outgoing = [[Int64]](repeating: [], count: comm.size)
        for (pin, n) in counts { outgoing[Int(pin.magnitude % UInt64(comm.size))] += [pin, n] }
        let (received, _) = try comm.alltoallv(outgoing.flatMap { $0 }, sendCounts: outgoing.map(\.count))
        var owned: [Int64: Int64] = [:]
        for i in stride(from: 0, to: received.count, by: 2) { owned[received[i], default: 0] += received[i + 1] }
        func best(_ pairs: [(Int64, Int64)]) -> [(Int64, Int64)] {
            Array(pairs.sorted { ($0.1, -$0.0) > ($1.1, -$1.0) }.prefix(m))
        }
        let local = best(owned.map { ($0.key, $0.value) })
        let (all, _) = try comm.allgatherv(local.flatMap { [$0.0, $0.1] })
        return best(stride(from: 0, to: all.count, by: 2).map { (all[$0], all[$0 + 1]) }).map(\.0)
    }
}

import Collective
import EventData
import Events
import Foundation
import Index
import Models

/// User–user collaborative filtering: the pins recently saved by the users nearest to a user in
/// two-tower space. Each pin scores Σ over the neighbours that saved it of
/// cos(user, neighbour) / (1 + the save's age rank in the neighbour's history).
///
/// The user vectors stay sharded by user: a distributed IVF over them finds each user's
/// neighbours (`searchOwn`), and each neighbour's recent saves are asked of the rank that holds
/// the neighbour's events (`Sharding.owner`, one alltoallv out and one back per round). Memory:
/// this rank's users' vectors and saves, its lists of the user index, one round's answers.
public struct UserCFChannel: Sendable {
    /// Neighbours per user, and the most recent saves taken from each.
    public var neighbours = 100, recentSaves = 20
    /// Inverted lists probed in the user index.
    public var nprobe = 16

    public init() {}

    /// The user index and this rank's users' recent saves, built once for many `candidates`
    /// calls (collective).
    public struct Prepared: Sendable {
        let index: IVFIndex
        let saves: [Int64: [Int64]]
        let vectors: UserVectorChannel
    }

    /// Builds the distributed IVF over the user vectors and collects the recent saves before
    /// `cut` of every one of this rank's `users` (collective). Nil when fewer than 2 users have
    /// vectors.
    public func prepare(users: [UserEvents], vectors: UserVectorChannel, cut: Int64, comm: Communicator) throws
        -> Prepared?
    {
        let v = vectors.vectors, d = v.d
        let total = Int(try comm.allreduce(Int64(v.users.count)))
        guard total > 1, d > 0 else { return nil }
        var kmeans = KMeansParameters(seed: 77, initialization: .random)
        kmeans.iterations = 15
        var index = try IVFIndex(
            d: d, parameters: IVFParameters(nlist: max(1, Int(Double(total).squareRoot())), metric: .l2, kmeans: kmeans)
        )
        try index.train(v.vectors, comm: comm)
        try index.add(v.vectors, ids: v.users, comm: comm)
        // This rank's users' most recent saves before the cut, most recent first.
        var saves: [Int64: [Int64]] = [:]
        for u in users {
            let pins = u.pins.indices.filter { u.times[$0] < cut && u.types[$0] == EventType.save.rawValue }
                .map { u.pins[$0] }
            saves[u.user] = Array(pins.reversed().prefix(recentSaves))
        }
        return Prepared(index: index, saves: saves, vectors: vectors)
    }

    /// Up to `k` candidates for each of this rank's `users` from events strictly before `cut`,
    /// best first, `exclude(user index)` left out; empty for a user without a vector.
    /// Collective: users go in rounds of `batchUsers`.
    public func candidates(
        users: [UserEvents], vectors: UserVectorChannel, cut: Int64, k: Int, batchUsers: Int,
        exclude: (Int) -> Set<Int64>, comm: Communicator
    ) throws -> [[Int64]] {
        let prepared = try prepare(users: users, vectors: vectors, cut: cut, comm: comm)
        return try candidates(
            users: users, prepared: prepared, k: k, batchUsers: batchUsers, exclude: exclude, comm: comm)
    }

    /// The same with a `prepare`d index (its users' saves answer the neighbours' requests;
    /// `users` may be any subset of this rank's users). Collective.
    public func candidates(
        users: [UserEvents], prepared: Prepared?, k: Int, batchUsers: Int, exclude: (Int) -> Set<Int64>,
        comm: Communicator
    ) throws -> [[Int64]] {
        var out = [[Int64]](repeating: [], count: users.count)
        guard let prepared else { return out }
        let index = prepared.index, saves = prepared.saves
        let rounds = Int(try comm.allreduce(Int64((users.count + batchUsers - 1) / batchUsers), op: .max))
        for round in 0..<rounds {
            let batch = Array(users.indices.dropFirst(round * batchUsers).prefix(batchUsers))
            let (queries, asked) = prepared.vectors.queries(users, batch)
            let want = neighbours + 1
            let (distances, labels) = try index.searchOwn(
                queries, k: want, parameters: SearchParameters(nprobe: nprobe), comm: comm)
            // Ask each neighbour's owner for its recent saves.
            var lists: [[(user: Int64, weight: Float)]] = []
            var wanted = Set<Int64>()
            for (q, i) in asked.enumerated() {
                var list: [(user: Int64, weight: Float)] = []
                for j in q * want..<(q + 1) * want where labels[j] >= 0 && labels[j] != users[i].user {
                    list.append((labels[j], max(0, 1 - distances[j] / 2)))  // unit vectors: cos = 1 − ‖a − b‖² / 2
                    wanted.insert(labels[j])
                }
                lists.append(Array(list.prefix(neighbours)))
            }
            let answers = try recentSaves(of: wanted.sorted(), saves: saves, comm: comm)
            for (q, i) in asked.enumerated() {
                var score: [Int64: Float] = [:]
                for n in lists[q] {
                    for (age, pin) in (answers[n.user] ?? []).enumerated() {
                        score[pin, default: 0] += n.weight / Float(1 + age)
                    }
                }
                let skip = exclude(i)
                out[i] = Array(
                    score.filter { !skip.contains($0.key) }.sorted { ($0.value, -$0.key) > ($1.value, -$1.key) }
                        .prefix(k).map(\.key))
            }
        }
        return out
    }

    /// The recent saves of `wanted` users, from the ranks holding them (collective).
    func recentSaves(of wanted: [Int64], saves: [Int64: [Int64]], comm: Communicator) throws -> [Int64: [Int64]] {
        var requests = [[Int64]](repeating: [], count: comm.size)
        for u in wanted { requests[Sharding.owner(u, ranks: comm.size)].append(u) }
        let (asked, counts) = try comm.alltoallv(requests.flatMap { $0 }, sendCounts: requests.map(\.count))
        var replies = [[Int64]](repeating: [], count: comm.size)
        var at = 0
        for (source, n) in counts.enumerated() {
            for u in asked[at..<at + n] {
                let list = saves[u] ?? []
                replies[source] += [u, Int64(list.count)] + list
            }
            at += n
        }
        let (received, _) = try comm.alltoallv(replies.flatMap { $0 }, sendCounts: replies.map(\.count))
        var out: [Int64: [Int64]] = [:]
        var i = 0
        while i < received.count {
            let n = Int(received[i + 1])
            out[received[i]] = Array(received[(i + 2)..<(i + 2 + n)])
            i += 2 + n
        }
        return out
    }
}

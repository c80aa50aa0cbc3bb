import Foundation
import Linalg

/// How a target's rank counts candidates with exactly its score.
public enum TieBreaking: String, Sendable, CaseIterable {
    /// Ties rank below the target (rank = number of strictly higher scores), as in the SASRec
    /// reference's "0 if nothing outscores it".
    case optimistic
    /// Ties rank above the target.
    case pessimistic
    /// Half of the ties rank above (the expected rank under random tie-breaking).
    case average
}

/// The rank of a target among candidates, and the two evaluation protocols of
/// ../shared/data: sampled negatives (Amazon Games, SASRec) and full ranking (S3-Rec Beauty).
public enum RankingProtocol {
    /// 0-based rank of a target scored `target` among `others` (the target itself excluded).
    public static func rank<S: BinaryFloatingPoint>(
        target: S, others: some Sequence<S>, ties: TieBreaking = .optimistic
    ) -> Double {
        var higher = 0, equal = 0
        for s in others {
            if s > target { higher += 1 } else if s == target { equal += 1 }
        }
        switch ties {
        case .optimistic: return Double(higher)
        case .pessimistic: return Double(higher + equal)
        case .average: return Double(higher) + Double(equal) / 2
        }
    }

    /// The sampled-negatives protocol (Amazon Games README): `count` negatives drawn uniformly,
    /// with replacement, from items `1 ... itemCount` outside `rejection` (the reference code's
    /// rejection set is the user's training items). Deterministic per (seed, user).
    public static func sampleNegatives(
        user: Int64, itemCount: Int, rejection: Set<Int>, count: Int = 100, seed: UInt64 = 2018
    ) -> [Int] {
        precondition(rejection.count < itemCount, "every item is rejected")
        var rng = RandomStream(seed: seed, rank: 0x5A, index: UInt64(bitPattern: user))
        var out: [Int] = []
        out.reserveCapacity(count)
        while out.count < count {
            let item = 1 + rng.int(below: itemCount)
            if !rejection.contains(item) { out.append(item) }
        }
        return out
    }

    /// Rank of `target` against its sampled negatives under `score` (`score(items)` returns one
    /// score per item): the 101-candidate ranking of the SASRec protocol.
    public static func sampledRank(
        target: Int, negatives: [Int], ties: TieBreaking = .optimistic, score: ([Int]) -> [Float]
    ) -> Double {
        let s = score([target] + negatives)
        return rank(target: s[0], others: s.dropFirst(), ties: ties)
    }

    /// The full-ranking protocol (S3-Rec Beauty README): rank of `target` among all items
    /// `1 ..< scores.count` (`scores[i]` is item i's score; index 0 is padding) after removing the
    /// items in `exclude` (the user's history); the target is never removed.
    public static func fullRank(scores: [Float], target: Int, exclude: Set<Int>, ties: TieBreaking = .optimistic)
        -> Double
    {
        var higher = 0, equal = 0
        let t = scores[target]
        // Count over every item, then take the excluded ones back out: O(items + |exclude|).
        scores.withUnsafeBufferPointer { s in
            for i in 1..<s.count {
                if s[i] > t { higher += 1 } else if s[i] == t { equal += 1 }
            }
        }
        equal -= 1  // the target itself
        for i in exclude where i != target && i >= 1 && i < scores.count {
            if scores[i] > t { higher -= 1 } else if scores[i] == t { equal -= 1 }
        }
        switch ties {
        case .optimistic: return Double(higher)
        case .pessimistic: return Double(higher + equal)
        case .average: return Double(higher) + Double(equal) / 2
        }
    }
}

/// Accumulates one rank per evaluated user and reports HR@K, NDCG@K and MRR averaged over users.
/// Shards combine by `merge` (sums), so the result does not depend on how users were split.
public struct RankAccumulator: Sendable {
    /// The cut-offs reported.
    public let cutoffs: [Int]
    /// Σ hits and Σ NDCG per cut-off, Σ reciprocal ranks, users.
    public private(set) var hits: [Double], ndcgs: [Double]
    public private(set) var reciprocalRanks = 0.0
    public private(set) var users = 0

    public init(cutoffs: [Int] = [5, 10, 20]) {
        self.cutoffs = cutoffs
        hits = Array(repeating: 0, count: cutoffs.count)
        ndcgs = hits
    }

    /// Adds one user's target rank (0-based).
    public mutating func add(rank: Double) {
        for (i, k) in cutoffs.enumerated() {
            hits[i] += RankingMetrics.hit(rank: rank, k: k)
            ndcgs[i] += RankingMetrics.ndcg(rank: rank, k: k)
        }
        reciprocalRanks += RankingMetrics.reciprocalRank(rank: rank)
        users += 1
    }

    /// Adds another accumulator's sums (same cut-offs).
    public mutating func merge(_ other: RankAccumulator) {
        precondition(cutoffs == other.cutoffs)
        for i in cutoffs.indices { hits[i] += other.hits[i]; ndcgs[i] += other.ndcgs[i] }
        reciprocalRanks += other.reciprocalRanks
        users += other.users
    }

    /// The flat sums `[users, mrr, hits…, ndcgs…]`, for an allreduce; `init(sums:)` rebuilds.
    public var sums: [Double] { [Double(users), reciprocalRanks] + hits + ndcgs }

    public init(cutoffs: [Int], sums: [Double]) {
        self.init(cutoffs: cutoffs)
        users = Int(sums[0])
        reciprocalRanks = sums[1]
        hits = Array(sums[2..<2 + cutoffs.count])
        ndcgs = Array(sums[(2 + cutoffs.count)...])
    }

    /// HR@k averaged over users.
    public func hitRate(_ k: Int) -> Double { users == 0 ? 0 : hits[cutoffs.firstIndex(of: k)!] / Double(users) }
    /// NDCG@k averaged over users.
    public func ndcg(_ k: Int) -> Double { users == 0 ? 0 : ndcgs[cutoffs.firstIndex(of: k)!] / Double(users) }
    /// Mean reciprocal rank.
    public var mrr: Double { users == 0 ? 0 : reciprocalRanks / Double(users) }

    /// A markdown row `| HR@5 | NDCG@5 | … | MRR | users |`.
    public var markdownRow: String {
        "| " + cutoffs.map { String(format: "%.4f | %.4f", hitRate($0), ndcg($0)) }.joined(separator: " | ")
            + String(format: " | %.4f | %d |", mrr, users)
    }
}

import Collective
import Foundation

/// Scored, labelled examples spread over the ranks, sorted GLOBALLY by score: rank r holds an
/// ascending run of scores, every score on rank r is below every score on rank r + 1, and equal
/// scores always sit on one rank. Built by a sample sort (regular samples → splitters →
/// one `alltoallv`), so no rank ever holds more than its share of the scores (plus the ties of
/// one value): the metrics and calibrators of a validation set of any size are computed with
/// per-rank memory proportional to the rank's shard.
public struct DistributedScores: Sendable {
    /// This rank's scores, ascending, and their labels (1 = positive).
    public var scores: [Double], labels: [Double]

    /// Sorts every rank's (`scores`, `labels`) globally. Collective.
    public static func sort(scores: [Double], labels: [Double], comm: Communicator) throws -> DistributedScores {
        precondition(scores.count == labels.count, "DistributedScores: \(scores.count) scores, \(labels.count) labels")
        let order = scores.indices.sorted { (scores[$0], labels[$0]) < (scores[$1], labels[$1]) }
        let s = order.map { scores[$0] }, y = order.map { labels[$0] }
        let size = comm.size
        if size == 1 { return DistributedScores(scores: s, labels: y) }
        // size regular samples per rank (NaN marks "none" on an empty rank), gathered everywhere.
        var samples = [Double](repeating: .nan, count: size)
        if !s.isEmpty { for j in 0..<size { samples[j] = s[j * s.count / size] } }
        let all = try comm.allgather(samples).filter { !$0.isNaN }.sorted()
        // size − 1 splitters; a value goes to the rank = number of splitters strictly below it,
        // a function of the value alone, so equal scores always land on the same rank.
        let splitters = all.isEmpty ? [] : (1..<size).map { all[$0 * all.count / size] }
        var counts = [Int](repeating: 0, count: size)
        var dest = 0
        for v in s {
            while dest < splitters.count && splitters[dest] < v { dest += 1 }
            counts[dest] += 1
        }
        let (rs, _) = try comm.alltoallv(s, sendCounts: counts)
        let (ry, _) = try comm.alltoallv(y, sendCounts: counts)
        // Each source sends an ascending run: merge by sorting (a k-way merge would save a log).
        let back = rs.indices.sorted { (rs[$0], ry[$0]) < (rs[$1], ry[$1]) }
        return DistributedScores(scores: back.map { rs[$0] }, labels: back.map { ry[$0] })
    }

    /// ROC AUC over all ranks' examples, ties counting one half: exactly the single-process
    /// `ClassificationMetrics.auc` whatever the rank count (the pair counts are integers, summed
    /// exactly in Double up to 2^53). nil when a class is absent. Collective.
    public func auc(comm: Communicator) throws -> Double? {
        let negatives = labels.reduce(0.0) { $0 + ($1 > 0.5 ? 0 : 1) }
        let before = try comm.allgather([negatives])
        var below = before[0..<comm.rank].reduce(0, +)  // negatives on lower ranks
        var pairs = 0.0, positives = 0.0
        var i = 0
        while i < scores.count {
            var j = i, p = 0.0, n = 0.0
            while j < scores.count && scores[j] == scores[i] {
                if labels[j] > 0.5 { p += 1 } else { n += 1 }
                j += 1
            }
            pairs += p * below + 0.5 * p * n
            below += n; positives += p
            i = j
        }
        var totals = [pairs, positives, negatives]
        try comm.allreduce(&totals)
        guard totals[1] > 0 && totals[2] > 0 else { return nil }
        return totals[0] / (totals[1] * totals[2])
    }

    /// Mean log loss of probabilities sigmoid(score) over all ranks (scores are logits),
    /// clipped to [ε, 1 − ε]. Collective; order-free, so it needs no sorting.
    public static func logloss(logits: [Double], labels: [Double], comm: Communicator, epsilon: Double = 1e-7) throws
        -> Double
    {
        var sum = 0.0
        for (z, y) in zip(logits, labels) {
            let p = min(max(1 / (1 + exp(-z)), epsilon), 1 - epsilon)
            sum -= y > 0.5 ? log(p) : log(1 - p)
        }
        var totals = [sum, Double(logits.count)]
        try comm.allreduce(&totals)
        return totals[1] > 0 ? totals[0] / totals[1] : .nan
    }
}

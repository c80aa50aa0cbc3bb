import Foundation

/// Metrics of predicted probabilities (or scores) against binary labels.
///
/// Glossary: n examples, P positives, N negatives; scores need not be probabilities for AUC.
public enum ClassificationMetrics {
    /// Area under the ROC curve: the probability that a random positive scores above a random
    /// negative, counting ties as one half (Mann–Whitney U with mid-ranks). O(n log n).
    /// Returns nil when all labels are equal.
    public static func auc<S: BinaryFloatingPoint>(scores: [S], labels: [Bool]) -> Double? {
        precondition(scores.count == labels.count, "auc: \(scores.count) scores, \(labels.count) labels")
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var positives = 0.0, rankSum = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count, scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let midRank = Double(i + j) / 2 + 1  // 1-based average rank of the tie group
            for k in i...j where labels[order[k]] {
                positives += 1
                rankSum += midRank
            }
            i = j + 1
        }
        let negatives = Double(order.count) - positives
        guard positives > 0, negatives > 0 else { return nil }
        return (rankSum - positives * (positives + 1) / 2) / (positives * negatives)
    }

    /// Group AUC: the AUC of each group (user) weighted by its number of examples (impressions),
    /// over the groups that have both a positive and a negative. Returns the value and the
    /// total weight and number of groups used (nil value when no group qualifies). Combine shards
    /// by summing `value × weight` and `weight`.
    public static func gauc<S: BinaryFloatingPoint>(scores: [S], labels: [Bool], groups: [Int64]) -> (
        value: Double?, weight: Double, groups: Int
    ) {
        precondition(scores.count == labels.count && labels.count == groups.count)
        var byGroup: [Int64: [Int]] = [:]
        for (i, g) in groups.enumerated() { byGroup[g, default: []].append(i) }
        var weighted = 0.0, weight = 0.0, used = 0
        for rows in byGroup.values {
            guard let a = auc(scores: rows.map { scores[$0] }, labels: rows.map { labels[$0] }) else { continue }
            weighted += a * Double(rows.count)
            weight += Double(rows.count)
            used += 1
        }
        return (weight > 0 ? weighted / weight : nil, weight, used)
    }

    /// Mean binary cross-entropy −[y log p + (1 − y) log(1 − p)], with p clipped to
    /// [ε, 1 − ε] (ε = 1e-7 by default, as in common toolkits).
    public static func logloss<S: BinaryFloatingPoint>(probabilities: [S], labels: [Bool], epsilon: Double = 1e-7)
        -> Double
    {
        precondition(probabilities.count == labels.count && !labels.isEmpty)
        var sum = 0.0
        for (p0, y) in zip(probabilities, labels) {
            let p = min(max(Double(p0), epsilon), 1 - epsilon)
            sum -= y ? Foundation.log(p) : Foundation.log(1 - p)
        }
        return sum / Double(labels.count)
    }

    /// Expected calibration error with `bins` equal-width bins over [0, 1]:
    /// Σ_b (n_b / n) |mean label_b − mean p_b|. A probability of exactly 1 falls in the last bin.
    public static func ece<S: BinaryFloatingPoint>(probabilities: [S], labels: [Bool], bins: Int = 15) -> Double {
        precondition(probabilities.count == labels.count && !labels.isEmpty && bins > 0)
        var count = [Double](repeating: 0, count: bins), sumP = count, sumY = count
        for (p0, y) in zip(probabilities, labels) {
            let p = Double(p0)
            let b = min(bins - 1, max(0, Int(p * Double(bins))))
            count[b] += 1
            sumP[b] += p
            sumY[b] += y ? 1 : 0
        }
        var e = 0.0
        for b in 0..<bins where count[b] > 0 { e += abs(sumY[b] - sumP[b]) / Double(labels.count) }
        return e
    }

    /// AUC, GAUC, logloss and ECE of one set of predictions.
    public struct Report: Sendable, CustomStringConvertible {
        public var auc: Double?
        public var gauc: Double?
        public var logloss: Double
        public var ece: Double
        public var examples: Int
        public var positives: Int
        public init(auc: Double?, gauc: Double?, logloss: Double, ece: Double, examples: Int, positives: Int) {
            self.auc = auc
            self.gauc = gauc
            self.logloss = logloss
            self.ece = ece
            self.examples = examples
            self.positives = positives
        }
        public var description: String {
            String(
                format: "AUC %@  GAUC %@  logloss %.4f  ECE %.4f  (%d examples, %d positives)",
                auc.map { String(format: "%.4f", $0) } ?? "n/a", gauc.map { String(format: "%.4f", $0) } ?? "n/a",
                logloss, ece, examples, positives)
        }
    }

    /// The four metrics at once. With the generator's true probabilities as `probabilities`
    /// this is the oracle report: the best any model can do on these labels, in expectation.
    public static func report<S: BinaryFloatingPoint>(probabilities: [S], labels: [Bool], groups: [Int64]) -> Report {
        Report(
            auc: auc(scores: probabilities, labels: labels),
            gauc: gauc(scores: probabilities, labels: labels, groups: groups).value,
            logloss: logloss(probabilities: probabilities, labels: labels),
            ece: ece(probabilities: probabilities, labels: labels),
            examples: labels.count, positives: labels.filter { $0 }.count)
    }
}

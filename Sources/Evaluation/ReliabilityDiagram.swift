import Collective
import Foundation

/// Calibration as a reliability diagram: predicted probabilities in equal-width bins over
/// [0, 1], each bin's mean prediction beside its observed positive rate. A calibrated model's
/// points lie on the diagonal.
public struct ReliabilityDiagram: Sendable, Codable, Equatable {
    /// One bin [lower, upper) (the last one closed).
    public struct Bin: Sendable, Codable, Equatable {
        public var lower: Double, upper: Double
        /// Examples in the bin, their mean predicted probability and observed positive rate
        /// (both 0 for an empty bin).
        public var count: Int, meanPredicted: Double, observedRate: Double
    }

    public var bins: [Bin]
    /// Expected calibration error: Σ_bins (count / total) · |meanPredicted − observedRate|.
    public var ece: Double

    /// The sums of (probabilities, labels) per bin: [count, Σ p, Σ y] × bins.
    static func sums(probabilities: [Double], labels: [Double], bins: Int) -> [Double] {
        precondition(
            probabilities.count == labels.count, "ReliabilityDiagram: \(probabilities.count) vs \(labels.count)")
        var s = [Double](repeating: 0, count: 3 * bins)
        for (p, y) in zip(probabilities, labels) {
            let b = min(bins - 1, max(0, Int(p * Double(bins))))
            s[3 * b] += 1
            s[3 * b + 1] += p
            s[3 * b + 2] += y > 0.5 ? 1 : 0
        }
        return s
    }

    /// The diagram of `probabilities` (in [0, 1]) and 0/1 `labels` over `bins` bins (one process).
    public init(probabilities: [Double], labels: [Double], bins: Int = 10) {
        self.init(sums: Self.sums(probabilities: probabilities, labels: labels, bins: bins))
    }

    /// Collective: the diagram over every rank's examples (one allreduce of 3 · bins values).
    public init(probabilities: [Double], labels: [Double], bins: Int = 10, comm: Communicator) throws {
        var s = Self.sums(probabilities: probabilities, labels: labels, bins: bins)
        try comm.allreduce(&s)
        self.init(sums: s)
    }

    init(sums s: [Double]) {
        let n = s.count / 3
        let total = (0..<n).reduce(0.0) { $0 + s[3 * $1] }
        bins = (0..<n).map { b in
            let c = s[3 * b]
            return Bin(
                lower: Double(b) / Double(n), upper: Double(b + 1) / Double(n), count: Int(c),
                meanPredicted: c > 0 ? s[3 * b + 1] / c : 0, observedRate: c > 0 ? s[3 * b + 2] / c : 0)
        }
        ece = bins.reduce(0.0) { $0 + Double($1.count) / max(total, 1) * abs($1.meanPredicted - $1.observedRate) }
    }
}

extension DistributedScores {
    /// Collective: group AUC (`ClassificationMetrics.gauc`) over every rank's (score, label,
    /// group) rows, spread over the ranks in any way: each row goes to the rank owning its
    /// group (a hash, `alltoallv`), which computes its groups' AUCs; the weighted sums are
    /// allreduced. The same as the one-process value up to the order of the sums. nil when no
    /// group has both classes.
    public static func gauc(scores: [Double], labels: [Double], groups: [Int64], comm: Communicator) throws -> Double? {
        precondition(scores.count == labels.count && labels.count == groups.count, "gauc: mismatched rows")
        var s = scores, y = labels, g = groups
        if comm.size > 1 {
            let dest = groups.map { EmbeddingDrift.owner($0, ranks: comm.size) }
            let order = groups.indices.sorted { (dest[$0], $0) < (dest[$1], $1) }
            var counts = [Int](repeating: 0, count: comm.size)
            for r in dest { counts[r] += 1 }
            s = try comm.alltoallv(order.map { scores[$0] }, sendCounts: counts).values
            y = try comm.alltoallv(order.map { labels[$0] }, sendCounts: counts).values
            g = try comm.alltoallv(order.map { groups[$0] }, sendCounts: counts).values
        }
        let local = ClassificationMetrics.gauc(scores: s, labels: y.map { $0 > 0.5 }, groups: g)
        var totals = [(local.value ?? 0) * local.weight, local.weight]
        try comm.allreduce(&totals)
        return totals[1] > 0 ? totals[0] / totals[1] : nil
    }
}

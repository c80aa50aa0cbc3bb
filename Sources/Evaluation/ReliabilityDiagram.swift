import Collective
import Foundation

/// Calibration as a reliability diagram: the predicted probabilities in bins of equal mass
/// (cut at their quantiles, so that a rare positive class, whose predictions all sit near 0,
/// still spreads over the bins), each bin's mean prediction beside its observed positive rate.
/// A calibrated model's points lie on the diagonal.
public struct ReliabilityDiagram: Sendable, Codable, Equatable {
    /// One bin [lower, upper) of predicted probability (the first from 0, the last to 1).
    public struct Bin: Sendable, Codable, Equatable {
        public var lower: Double, upper: Double
        /// Examples in the bin, their mean predicted probability and observed positive rate.
        public var count: Int, meanPredicted: Double, observedRate: Double
    }

    /// The non-empty bins, ascending.
    public var bins: [Bin]
    /// Expected calibration error: Σ_bins (count / total) · |meanPredicted − observedRate|.
    public var ece: Double

    /// The sums per bin of `edges`: [count, Σ p, Σ y] × (edges.count + 1).
    static func sums(probabilities: [Double], labels: [Double], edges: [Double]) -> [Double] {
        precondition(
            probabilities.count == labels.count, "ReliabilityDiagram: \(probabilities.count) vs \(labels.count)")
        var s = [Double](repeating: 0, count: 3 * (edges.count + 1))
        for (p, y) in zip(probabilities, labels) {
            let b = PopulationStability.bin(p, edges: edges)
            s[3 * b] += 1
            s[3 * b + 1] += p
            s[3 * b + 2] += y > 0.5 ? 1 : 0
        }
        return s
    }

    /// The diagram of `probabilities` (in [0, 1]) and 0/1 `labels` over up to `bins` bins at
    /// the probabilities' quantiles (fewer when they tie; one process).
    public init(probabilities: [Double], labels: [Double], bins: Int = 10) {
        let edges = PopulationStability.quantileEdges(probabilities, bins: bins)
        self.init(edges: edges, sums: Self.sums(probabilities: probabilities, labels: labels, edges: edges))
    }

    /// Collective: the diagram over every rank's examples, the same as the one-process one
    /// (quantiles by a global sample sort, then one allreduce of the bins' sums).
    public init(probabilities: [Double], labels: [Double], bins: Int = 10, comm: Communicator) throws {
        let edges = try PopulationStability.quantileEdges(probabilities, bins: bins, comm: comm)
        var s = Self.sums(probabilities: probabilities, labels: labels, edges: edges)
        try comm.allreduce(&s)
        self.init(edges: edges, sums: s)
    }

    init(edges: [Double], sums s: [Double]) {
        let bounds = [0.0] + edges + [1.0]
        let total = stride(from: 0, to: s.count, by: 3).reduce(0.0) { $0 + s[$1] }
        bins = (0...edges.count).compactMap { b in
            let c = s[3 * b]
            guard c > 0 else { return nil }
            return Bin(
                lower: bounds[b], upper: bounds[b + 1], count: Int(c), meanPredicted: s[3 * b + 1] / c,
                observedRate: s[3 * b + 2] / c)
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

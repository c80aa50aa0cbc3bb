import Collective
import Foundation

/// The distribution of sequence lengths (events per user history) in power-of-two buckets:
/// bucket 0 holds length 0, bucket b ≥ 1 the lengths in [2^(b−1), 2^b). A truncation bug moves
/// mass from the high buckets to one low bucket and shows as a PSI between two runs' buckets
/// and a fall of the longest length.
public struct SequenceLengths: Sendable, Codable, Equatable {
    /// Sequences per bucket (`buckets` entries), over every rank.
    public var counts: [Double]
    /// Mean and longest length (events).
    public var mean: Double, longest: Int

    /// Buckets kept: lengths up to 2^31 − 1.
    public static let buckets = 32

    /// The bucket of a length ≥ 0.
    public static func bucket(_ length: Int) -> Int {
        length <= 0 ? 0 : min(buckets - 1, Int.bitWidth - length.leadingZeroBitCount)
    }

    /// The distribution of `lengths` (one process).
    public init(lengths: [Int]) {
        var c = [Double](repeating: 0, count: Self.buckets)
        for l in lengths { c[Self.bucket(l)] += 1 }
        let total = lengths.reduce(0.0) { $0 + Double($1) }
        self.init(counts: c, mean: total / Double(max(lengths.count, 1)), longest: lengths.max() ?? 0)
    }

    /// Collective: the distribution of every rank's `lengths` (two allreduces; exact).
    public init(lengths: [Int], comm: Communicator) throws {
        var c = [Double](repeating: 0, count: Self.buckets + 2)
        for l in lengths { c[Self.bucket(l)] += 1 }
        c[Self.buckets] = lengths.reduce(0.0) { $0 + Double($1) }
        c[Self.buckets + 1] = Double(lengths.count)
        try comm.allreduce(&c)
        let longest = try comm.allreduce(Int64(lengths.max() ?? 0), op: .max)
        self.init(
            counts: Array(c[0..<Self.buckets]), mean: c[Self.buckets] / max(c[Self.buckets + 1], 1),
            longest: Int(longest))
    }

    /// From the buckets themselves.
    public init(counts: [Double], mean: Double, longest: Int) {
        self.counts = counts
        self.mean = mean
        self.longest = longest
    }

    /// PSI of `new`'s buckets against `base`'s (the bucket fractions, floored).
    public static func psi(base: SequenceLengths, new: SequenceLengths) -> Double {
        PopulationStability(edges: [], baseCounts: base.counts, newCounts: new.counts).psi
    }
}

/// How spread the target-attention weights are: the entropy −Σ_s w_s ln w_s of each (row,
/// head) over its valid positions, divided by ln(valid positions), so 0 is attention on one
/// event and 1 is uniform attention (a model that no longer tells its history's events apart,
/// as when the sequence stopped mattering). Rows with fewer than 2 valid positions are skipped.
public struct AttentionEntropy: Sendable, Codable, Equatable {
    /// Mean normalised entropy over the (row, head) pairs counted, in [0, 1].
    public var mean: Double
    /// (row, head) pairs counted, over every rank.
    public var count: Int

    /// The sums of the weights (B, heads, T) row-major, a position valid when `mask[b·T + s]`
    /// (the layout of `TargetAttention.lastAttention`): (Σ normalised entropy, pairs).
    public static func sums(weights: [Float], mask: [Bool], heads: Int, length t: Int) -> (Double, Double) {
        precondition(heads > 0 && t > 0 && weights.count % (heads * t) == 0, "AttentionEntropy: bad shape")
        let b = weights.count / (heads * t)
        precondition(mask.count == b * t, "AttentionEntropy: mask of \(mask.count), expected \(b * t)")
        var s = 0.0, n = 0.0
        for i in 0..<b {
            let valid = (0..<t).filter { mask[i * t + $0] }
            guard valid.count >= 2 else { continue }
            for h in 0..<heads {
                var e = 0.0
                for p in valid {
                    let w = Double(weights[(i * heads + h) * t + p])
                    if w > 0 { e -= w * log(w) }
                }
                s += e / log(Double(valid.count))
                n += 1
            }
        }
        return (s, n)
    }

    /// The entropy of one batch of weights (one process).
    public init(weights: [Float], mask: [Bool], heads: Int, length: Int) {
        let (s, n) = Self.sums(weights: weights, mask: mask, heads: heads, length: length)
        self.init(mean: s / max(n, 1), count: Int(n))
    }

    /// Collective: the entropy over every rank's batch (one allreduce).
    public init(weights: [Float], mask: [Bool], heads: Int, length: Int, comm: Communicator) throws {
        let (s, n) = Self.sums(weights: weights, mask: mask, heads: heads, length: length)
        var totals = [s, n]
        try comm.allreduce(&totals)
        self.init(mean: totals[0] / max(totals[1], 1), count: Int(totals[1]))
    }

    /// From the figures themselves.
    public init(mean: Double, count: Int) {
        self.mean = mean
        self.count = count
    }
}

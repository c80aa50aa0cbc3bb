import Collective
import Foundation

/// The population stability index (PSI) of a new distribution of scores against a base one,
/// over fixed bins cut at the base's quantiles:
/// PSI = Σ_b (new_b − base_b) · ln(new_b / base_b), where base_b and new_b are the fractions of
/// each population in bin b (floored at `floor` so an empty bin stays finite).
/// Rules of thumb: < 0.1 stable, 0.1–0.25 a moderate shift, > 0.25 a shift to act on.
public struct PopulationStability: Sendable, Codable, Equatable {
    /// Interior bin edges, ascending and distinct (bins − 1 of them, fewer when the base has
    /// ties at a quantile). Bin j holds the values v with edges[j − 1] ≤ v < edges[j].
    public var edges: [Double]
    /// The fraction of the base and of the new values in each bin (edges.count + 1 each).
    public var base: [Double], new: [Double]
    /// The index (dimensionless, ≥ 0).
    public var psi: Double
    /// Values counted in each population (over every rank).
    public var baseCount: Int, newCount: Int

    /// Fractions below this count as this in the logarithm (empty-bin smoothing).
    public static let floor = 1e-4

    /// PSI of two aligned fraction vectors (each summing to 1), fractions floored at `floor`.
    public static func index(base: [Double], new: [Double], floor: Double = PopulationStability.floor) -> Double {
        precondition(base.count == new.count, "PSI: \(base.count) base bins, \(new.count) new bins")
        var s = 0.0
        for (b, n) in zip(base, new) {
            let pb = max(b, floor), pn = max(n, floor)
            s += (pn - pb) * log(pn / pb)
        }
        return s
    }

    /// The interior edges at the quantiles j/bins (j = 1 … bins − 1) of `values`: the value at
    /// sorted index ⌊j·n/bins⌋, duplicates dropped. O(n log n).
    public static func quantileEdges(_ values: [Double], bins: Int) -> [Double] {
        let sorted = values.sorted()
        guard !sorted.isEmpty, bins > 1 else { return [] }
        return distinct((1..<bins).map { sorted[$0 * sorted.count / bins] })
    }

    /// The bin of `v`: the number of edges at or below it (0 … edges.count). O(log edges).
    public static func bin(_ v: Double, edges: [Double]) -> Int {
        var lo = 0, hi = edges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if edges[mid] <= v { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Counts of `values` per bin (edges.count + 1 of them).
    public static func counts(_ values: [Double], edges: [Double]) -> [Double] {
        var c = [Double](repeating: 0, count: edges.count + 1)
        for v in values { c[bin(v, edges: edges)] += 1 }
        return c
    }

    /// PSI of `new` against `base` over `bins` bins at the base's quantiles (one process).
    public init(base: [Double], new: [Double], bins: Int = 10) {
        let edges = Self.quantileEdges(base, bins: bins)
        self.init(edges: edges, baseCounts: Self.counts(base, edges: edges), newCounts: Self.counts(new, edges: edges))
    }

    /// Collective: PSI of every rank's `new` values against every rank's `base` values, the
    /// base's quantiles found by a global sample sort (`DistributedScores`), the bin counts
    /// summed over ranks. The same result as the one-process `init(base:new:bins:)` on all
    /// the values, whatever the rank count and however the values are spread (memory: the
    /// rank's values).
    public init(base: [Double], new: [Double], bins: Int = 10, comm: Communicator) throws {
        let edges = try Self.quantileEdges(base, bins: bins, comm: comm)
        var c = Self.counts(base, edges: edges) + Self.counts(new, edges: edges)
        try comm.allreduce(&c)
        self.init(edges: edges, baseCounts: Array(c[0...edges.count]), newCounts: Array(c[(edges.count + 1)...]))
    }

    /// Collective: `quantileEdges(_:bins:)` of every rank's values, the same edges whatever the
    /// rank count (a global sample sort, `DistributedScores`; memory: the rank's values).
    public static func quantileEdges(_ values: [Double], bins: Int, comm: Communicator) throws -> [Double] {
        let sorted = try DistributedScores.sort(
            scores: values, labels: [Double](repeating: 0, count: values.count), comm: comm)
        let held = try comm.allgather([Int64(sorted.scores.count)]).map { Int($0) }
        let n = held.reduce(0, +), first = held[0..<comm.rank].reduce(0, +)
        var picked = [Double](repeating: -.infinity, count: max(bins - 1, 0))
        if n > 0 {
            for j in picked.indices {
                let g = (j + 1) * n / bins
                if g >= first && g < first + sorted.scores.count { picked[j] = sorted.scores[g - first] }
            }
        }
        try comm.allreduce(&picked, op: .max)
        return n > 0 ? distinct(picked) : []
    }

    /// From bin counts (edges.count + 1 each).
    public init(edges: [Double], baseCounts: [Double], newCounts: [Double]) {
        let nb = baseCounts.reduce(0, +), nn = newCounts.reduce(0, +)
        self.edges = edges
        base = baseCounts.map { $0 / max(nb, 1) }
        new = newCounts.map { $0 / max(nn, 1) }
        psi = nb > 0 && nn > 0 ? Self.index(base: base, new: new) : 0
        baseCount = Int(nb)
        newCount = Int(nn)
    }

    static func distinct(_ ascending: [Double]) -> [Double] {
        var out: [Double] = []
        for v in ascending where out.last != v { out.append(v) }
        return out
    }
}

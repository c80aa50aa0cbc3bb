import Collective
import Foundation

/// How often each value of a categorical feature occurs (a sparse field of the ranker: category,
/// surface, device, country, hour), for its drift between runs: the PSI over the union of the
/// two runs' values, each value a bin.
public struct CategoricalDistribution: Sendable, Codable, Equatable {
    public var name: String
    /// The distinct values, ascending, and their counts (over every rank).
    public var values: [Int64], counts: [Double]

    public init(name: String, values: [Int64], counts: [Double]) {
        self.name = name
        self.values = values
        self.counts = counts
    }

    /// The distribution of each column of `ids`, a row-major (n, names.count) matrix (one process).
    public static func measure(ids: [Int64], names: [String]) -> [CategoricalDistribution] {
        merge(triples(ids: ids, width: names.count), names: names)
    }

    /// Collective: the distribution of each column over every rank's rows (the distinct
    /// (column, value, count) triples allgathered: memory proportional to the distinct values).
    public static func measure(ids: [Int64], names: [String], comm: Communicator) throws -> [CategoricalDistribution] {
        merge(try comm.allgatherv(triples(ids: ids, width: names.count)).values, names: names)
    }

    /// PSI of `new` against `base` over the union of their values.
    public static func psi(base: CategoricalDistribution, new: CategoricalDistribution) -> Double {
        let all = Array(Set(base.values).union(new.values)).sorted()
        func aligned(_ d: CategoricalDistribution) -> [Double] {
            let at = Dictionary(uniqueKeysWithValues: zip(d.values, d.counts))
            return all.map { at[$0] ?? 0 }
        }
        return PopulationStability(edges: [], baseCounts: aligned(base), newCounts: aligned(new)).psi
    }

    static func triples(ids: [Int64], width: Int) -> [Int64] {
        precondition(width > 0 && ids.count % width == 0, "CategoricalDistribution: \(ids.count) ids, width \(width)")
        var counts = [[Int64: Int64]](repeating: [:], count: width)
        for (i, v) in ids.enumerated() { counts[i % width][v, default: 0] += 1 }
        return counts.enumerated().flatMap { c, d in d.keys.sorted().flatMap { [Int64(c), $0, d[$0]!] } }
    }

    static func merge(_ triples: [Int64], names: [String]) -> [CategoricalDistribution] {
        var counts = [[Int64: Double]](repeating: [:], count: names.count)
        for t in stride(from: 0, to: triples.count, by: 3) {
            counts[Int(triples[t])][triples[t + 1], default: 0] += Double(triples[t + 2])
        }
        return names.enumerated().map { c, name in
            let values = counts[c].keys.sorted()
            return CategoricalDistribution(name: name, values: values, counts: values.map { counts[c][$0]! })
        }
    }
}

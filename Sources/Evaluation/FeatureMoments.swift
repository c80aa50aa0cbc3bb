import Collective
import Foundation

/// The mean and standard deviation of every column of a feature matrix, for feature drift
/// between two runs: a column whose mean moves by more than a fraction of the base's standard
/// deviation, or whose spread grows or shrinks by a factor, has drifted.
public struct FeatureMoments: Sendable, Codable, Equatable {
    /// Column names (width of them).
    public var names: [String]
    /// Rows counted (over every rank).
    public var count: Int
    /// Per column: the mean and the population standard deviation (same units as the column).
    public var mean: [Double], std: [Double]

    /// The moments of `rows`, a row-major (n, names.count) matrix (one process; two passes).
    public init(rows: [Float], names: [String]) {
        let w = names.count
        precondition(w > 0 && rows.count % w == 0, "FeatureMoments: \(rows.count) values, width \(w)")
        let n = rows.count / w
        var sum = [Double](repeating: 0, count: w), dev = sum
        for i in 0..<n { for c in 0..<w { sum[c] += Double(rows[i * w + c]) } }
        let mean = sum.map { $0 / Double(max(n, 1)) }
        for i in 0..<n {
            for c in 0..<w {
                let x = Double(rows[i * w + c]) - mean[c]
                dev[c] += x * x
            }
        }
        self.init(names: names, count: n, mean: mean, std: dev.map { ($0 / Double(max(n, 1))).squareRoot() })
    }

    /// Collective: the moments of every rank's rows of a row-major (n_r, names.count) matrix,
    /// the same as the one-process `init(rows:names:)` on all rows up to the order of the sums
    /// (two allreduces of width + 1 values).
    public init(rows: [Float], names: [String], comm: Communicator) throws {
        let w = names.count
        precondition(w > 0 && rows.count % w == 0, "FeatureMoments: \(rows.count) values, width \(w)")
        let n = rows.count / w
        var sum = [Double](repeating: 0, count: w + 1)
        for i in 0..<n { for c in 0..<w { sum[c] += Double(rows[i * w + c]) } }
        sum[w] = Double(n)
        try comm.allreduce(&sum)
        let total = sum[w]
        let mean = sum[0..<w].map { $0 / max(total, 1) }
        var dev = [Double](repeating: 0, count: w)
        for i in 0..<n {
            for c in 0..<w {
                let x = Double(rows[i * w + c]) - mean[c]
                dev[c] += x * x
            }
        }
        try comm.allreduce(&dev)
        self.init(names: names, count: Int(total), mean: mean, std: dev.map { ($0 / max(total, 1)).squareRoot() })
    }

    /// From the moments themselves.
    public init(names: [String], count: Int, mean: [Double], std: [Double]) {
        self.names = names
        self.count = count
        self.mean = mean
        self.std = std
    }

    /// One column's drift from a base run to a new one.
    public struct Drift: Sendable, Codable, Equatable {
        public var name: String
        public var baseMean: Double, newMean: Double, baseStd: Double, newStd: Double
        /// |new mean − base mean| / base std (the base std floored at 1e-9 · max(1, |mean|)).
        public var meanShift: Double
        /// new std / base std (1 when both are 0; 10⁹ when only the base's is 0: JSON has no ∞).
        public var stdRatio: Double
    }

    /// Each column of `new` beside the same-named column of `base` (columns missing from
    /// either are skipped).
    public static func drift(base: FeatureMoments, new: FeatureMoments) -> [Drift] {
        base.names.enumerated().compactMap { c, name in
            guard let j = new.names.firstIndex(of: name) else { return nil }
            let floor = 1e-9 * max(1, abs(base.mean[c]))
            let shift = abs(new.mean[j] - base.mean[c]) / max(base.std[c], floor)
            let ratio = base.std[c] > floor ? new.std[j] / base.std[c] : (new.std[j] > floor ? 1e9 : 1)
            return Drift(
                name: name, baseMean: base.mean[c], newMean: new.mean[j], baseStd: base.std[c], newStd: new.std[j],
                meanShift: shift, stdRatio: ratio)
        }
    }
}

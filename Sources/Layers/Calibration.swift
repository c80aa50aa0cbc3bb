import Artifacts
import Foundation

/// Platt scaling: p = σ(a·s + b) on a raw score s (a logit), fitted by Newton's method on the
/// log-loss of held-out (score, label) pairs.
public struct PlattScaling: Sendable, Equatable {
    public var a: Double, b: Double

    public init(a: Double = 1, b: Double = 0) {
        self.a = a
        self.b = b
    }

    /// Fits a, b on scores (logits) and labels in {0, 1} (optionally weighted). O(n) per Newton
    /// iteration; stops when the step is below 1e-10 or after `iterations`.
    public static func fit(scores: [Double], labels: [Double], weights: [Double]? = nil, iterations: Int = 100)
        -> PlattScaling
    {
        precondition(
            scores.count == labels.count && !scores.isEmpty,
            "Platt: scores and labels must be non-empty and equal in length")
        var a = 1.0, b = 0.0
        for _ in 0..<iterations {
            var ga = 0.0, gb = 0.0, haa = 1e-12, hab = 0.0, hbb = 1e-12
            for i in scores.indices {
                let w = weights?[i] ?? 1
                let s = scores[i]
                let p = 1 / (1 + exp(-(a * s + b)))
                let r = w * (p - labels[i]), q = w * p * (1 - p)
                ga += r * s; gb += r
                haa += q * s * s; hab += q * s; hbb += q
            }
            let det = haa * hbb - hab * hab
            guard det > 0 else { break }
            let da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det
            a -= da; b -= db
            if abs(da) + abs(db) < 1e-10 { break }
        }
        return PlattScaling(a: a, b: b)
    }

    /// Calibrated probability of score s.
    public func callAsFunction(_ s: Double) -> Double { 1 / (1 + exp(-(a * s + b))) }

    /// Saves into `group` as attributes `platt_a`, `platt_b`.
    public func save(to group: H5Group) throws {
        try group.setAttribute("calibration", "platt")
        try group.setAttribute("platt_a", a)
        try group.setAttribute("platt_b", b)
    }

    /// Loads what `save` wrote.
    public static func load(from group: H5Group) throws -> PlattScaling {
        PlattScaling(a: try group.doubleAttribute("platt_a"), b: try group.doubleAttribute("platt_b"))
    }
}

/// Isotonic regression: the non-decreasing step function of the score that minimises squared
/// error to the labels, fitted by pool-adjacent-violators in O(n log n) (the sort).
/// Between block means the prediction is interpolated linearly; outside it is clamped.
public struct IsotonicRegression: Sendable, Equatable {
    /// Block score centres (ascending) and their calibrated values (non-decreasing).
    public var thresholds: [Double], values: [Double]

    public init(thresholds: [Double], values: [Double]) {
        precondition(
            thresholds.count == values.count && !thresholds.isEmpty, "Isotonic: empty or mismatched thresholds/values")
        self.thresholds = thresholds
        self.values = values
    }

    public static func fit(scores: [Double], labels: [Double], weights: [Double]? = nil) -> IsotonicRegression {
        precondition(
            scores.count == labels.count && !scores.isEmpty,
            "Isotonic: scores and labels must be non-empty and equal in length")
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        let tied = tiedBlocks(
            scores: order.map { scores[$0] }, labels: order.map { labels[$0] }, weights: order.map { weights?[$0] ?? 1 }
        )
        let (mean, _, centre) = pool(means: tied.means, weights: tied.weights, centres: tied.centres)
        return IsotonicRegression(thresholds: centre, values: mean)
    }

    /// Blocks of equal scores (ascending `scores`): one block per distinct score with the
    /// weighted mean label, so tied scores always get one prediction.
    package static func tiedBlocks(scores: [Double], labels: [Double], weights: [Double]) -> (
        means: [Double], weights: [Double], centres: [Double]
    ) {
        var means: [Double] = [], ws: [Double] = [], centres: [Double] = []
        var i = 0
        while i < scores.count {
            var j = i, sw = 0.0, sy = 0.0
            while j < scores.count && scores[j] == scores[i] { sw += weights[j]; sy += weights[j] * labels[j]; j += 1 }
            means.append(sy / sw); ws.append(sw); centres.append(scores[i])
            i = j
        }
        return (means, ws, centres)
    }

    /// Calibrated probability of score s.
    public func callAsFunction(_ s: Double) -> Double {
        if s <= thresholds[0] { return values[0] }
        if s >= thresholds[thresholds.count - 1] { return values[values.count - 1] }
        var lo = 0, hi = thresholds.count - 1  // thresholds[lo] < s < thresholds[hi]
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if thresholds[mid] <= s { lo = mid } else { hi = mid }
        }
        let f = (s - thresholds[lo]) / (thresholds[hi] - thresholds[lo])
        return values[lo] + f * (values[hi] - values[lo])
    }

    /// Saves into `group` as datasets `isotonic_thresholds`, `isotonic_values`.
    public func save(to group: H5Group) throws {
        try group.setAttribute("calibration", "isotonic")
        try group.write("isotonic_thresholds", thresholds)
        try group.write("isotonic_values", values)
    }

    public static func load(from group: H5Group) throws -> IsotonicRegression {
        let t = try group.read("isotonic_thresholds", as: Double.self)
        let v = try group.read("isotonic_values", as: Double.self)
        guard t.count == v.count, !t.isEmpty else {
            throw ArtifactError(
                file: group.file.path, object: group.path,
                message: "isotonic thresholds (\(t.count)) and values (\(v.count)) differ or are empty")
        }
        return IsotonicRegression(thresholds: t, values: v)
    }
}

/// Calibration metrics.
public enum CalibrationMetrics {
    /// Expected calibration error with `bins` equal-width probability bins:
    /// Σ_bins (n_bin / n)·|mean label − mean prediction|.
    public static func expectedCalibrationError(predictions: [Double], labels: [Double], bins: Int = 15) -> Double {
        precondition(predictions.count == labels.count && !predictions.isEmpty, "ECE: empty or mismatched inputs")
        var count = [Double](repeating: 0, count: bins), sumP = count, sumY = count
        for i in predictions.indices {
            let b = Swift.min(bins - 1, Swift.max(0, Int(predictions[i] * Double(bins))))
            count[b] += 1; sumP[b] += predictions[i]; sumY[b] += labels[i]
        }
        var ece = 0.0
        for b in 0..<bins where count[b] > 0 { ece += abs(sumY[b] - sumP[b]) / Double(predictions.count) }
        return ece
    }
}

/// A fitted calibrator of either kind, as saved beside a model (`saveCheckpoint(to:calibrators:)`).
public enum Calibrator: Sendable, Equatable {
    case platt(PlattScaling)
    case isotonic(IsotonicRegression)

    /// Calibrated probability of raw score s.
    public func callAsFunction(_ s: Double) -> Double {
        switch self {
        case .platt(let p): p(s)
        case .isotonic(let i): i(s)
        }
    }

    public func save(to group: H5Group) throws {
        switch self {
        case .platt(let p): try p.save(to: group)
        case .isotonic(let i): try i.save(to: group)
        }
    }

    /// Loads a calibrator of the kind named by the group's `calibration` attribute.
    public static func load(from group: H5Group) throws -> Calibrator {
        switch try group.stringAttribute("calibration") {
        case "platt": return .platt(try PlattScaling.load(from: group))
        case "isotonic": return .isotonic(try IsotonicRegression.load(from: group))
        case let other:
            throw ArtifactError(file: group.file.path, object: group.path, message: "unknown calibration kind \(other)")
        }
    }
}

extension Calibrator {
    /// The calibrators saved with a checkpoint under `/calibration` (by name, e.g. one per
    /// task); empty when none.
    public static func saved(in path: String) throws -> [String: Calibrator] {
        let root = try H5File(path: path, mode: .read).root
        guard root.contains("calibration") else { return [:] }
        let group = try root.group("calibration")
        var out: [String: Calibrator] = [:]
        for name in try group.names() { out[name] = try Calibrator.load(from: try group.group(name)) }
        return out
    }
}

extension IsotonicRegression {
    /// Pool-adjacent-violators over weighted blocks in score order: merges a block into its
    /// predecessor while the predecessor's mean is ≥ its own (as `fit(scores:labels:)` does).
    package static func pool(means: [Double], weights: [Double], centres: [Double]) -> (
        means: [Double], weights: [Double], centres: [Double]
    ) {
        var mean: [Double] = [], weight: [Double] = [], centre: [Double] = []
        for i in means.indices {
            var m = means[i], w = weights[i], c = centres[i]
            while let last = mean.last, last >= m {
                let lw = weight.removeLast()
                mean.removeLast()
                let lc = centre.removeLast()
                m = (last * lw + m * w) / (lw + w)
                c = (lc * lw + c * w) / (lw + w)
                w += lw
            }
            mean.append(m); weight.append(w); centre.append(c)
        }
        return (mean, weight, centre)
    }
}

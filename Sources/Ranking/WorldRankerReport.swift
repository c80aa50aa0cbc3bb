import Evaluation
import Foundation

/// The synthetic world's ranker report on its test impressions: per model, save and closeup
/// AUC / GAUC, ECE of the calibrated probabilities, and the AUC of the final score
/// `w_save·P(save) + w_closeup·P(closeup)` for saves, beside the oracle (the world's true
/// probabilities); and the position-bias check (Pearson correlation of closeup scores with the
/// logged position; the position-free truth is P(closeup) / examination(position)).
public struct WorldRankerReport {
    let world: WorldExamples
    let weights: [Double]
    let labels: [[Bool]]
    let position: [Double]
    /// Markdown rows of the metrics table and of the position-bias table.
    public private(set) var rows: [String] = [], biasRows: [String] = []

    /// A report over `world.test`, with the oracle's rows already added.
    public init(world: WorldExamples, taskWeights: [Double]) {
        self.world = world
        weights = taskWeights
        labels = world.test.labels.map { $0.map { $0 > 0.5 } }
        position = world.testPositions.map(Double.init)
        let oracle = world.oracle.map { $0.map(Double.init) }
        add("oracle (true probabilities)", probabilities: oracle, ranking: oracle)
        biasRows.append(
            String(
                format: "| oracle P(closeup) (with position effect) | %.4f |", Self.pearson(oracle[1], position)))
        biasRows.append(
            String(
                format: "| oracle relevance P(closeup)/exam(position) (the truth) | %.4f |",
                Self.pearson(world.relevance.map(Double.init), position)))
    }

    /// Adds a model's row: `probabilities` (tasks save, closeup × test rows) calibrated, and
    /// `ranking` the scores ranked by AUC / GAUC (logits or probabilities).
    public mutating func add(_ name: String, probabilities: [[Double]], ranking: [[Double]]) {
        var cells = [name]
        for k in 0..<2 {
            let auc = ClassificationMetrics.auc(scores: ranking[k], labels: labels[k]) ?? .nan
            let gauc =
                ClassificationMetrics.gauc(scores: ranking[k], labels: labels[k], groups: world.test.groups).value
                ?? .nan
            cells += [String(format: "%.4f", auc), String(format: "%.4f", gauc)]
        }
        for k in 0..<2 {
            cells.append(
                String(format: "%.4f", ClassificationMetrics.ece(probabilities: probabilities[k], labels: labels[k])))
        }
        let final = (0..<world.test.count).map { i in
            weights[0] * probabilities[0][i] + weights[1] * probabilities[1][i]
        }
        cells.append(String(format: "%.4f", ClassificationMetrics.auc(scores: final, labels: labels[0]) ?? .nan))
        rows.append("| " + cells.joined(separator: " | ") + " |")
    }

    /// Adds a model's position-bias rows: its closeup logits with the position effect nulled,
    /// and, when it has a position tower, with the tower's logit added back (as trained).
    public mutating func addBias(_ name: String, closeupLogits: [Float], withPositionTower: [Float]?) {
        var line = String(
            format: "| %@: closeup logit, position nulled | %.4f |", name,
            Self.pearson(closeupLogits.map(Double.init), position))
        if let withPositionTower {
            line += String(
                format: "\n| %@: closeup logit + position tower (as trained) | %.4f |", name,
                Self.pearson(withPositionTower.map(Double.init), position))
        }
        biasRows.append(line)
    }

    /// The two tables, with the header of `calibration` and the weights.
    public func markdown(calibration: String) -> String {
        var out = [
            "| model (test, last 2 days) | save AUC | save GAUC | closeup AUC | closeup GAUC | save ECE | closeup ECE | final-score AUC (save) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        out += rows
        out += [
            "",
            "ECE after \(calibration) calibration fitted on valid (oracle: raw true probabilities). Final score = \(weights[0])·P(save) + \(weights[1])·P(closeup).",
            "", "| position-bias check (test) | Pearson corr. with logged position |", "|---|---|",
        ]
        out += biasRows
        return out.joined(separator: "\n")
    }

    /// Pearson correlation of `a` and `b` (same length).
    public static func pearson(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count)
        let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for i in a.indices {
            sab += (a[i] - ma) * (b[i] - mb)
            saa += (a[i] - ma) * (a[i] - ma)
            sbb += (b[i] - mb) * (b[i] - mb)
        }
        return sab / max((saa * sbb).squareRoot(), 1e-300)
    }
}

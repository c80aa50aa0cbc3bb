import Artifacts
import Foundation
import Learning
import Linalg
import Testing
import _TestSupport

@Suite("Calibration: Platt scaling and isotonic regression")
struct CalibrationTests {
    /// Scores are logits z ~ N(0, 1.5²) of an over-confident, biased model: the true click
    /// probability is σ(0.5·z − 0.8), while the model claims σ(z).
    func sample(_ n: Int, seed: UInt64) -> (scores: [Double], labels: [Double]) {
        var rng = RandomStream(seed: seed)
        var s: [Double] = [], y: [Double] = []
        for _ in 0..<n {
            let z = rng.normal() * 1.5
            s.append(z)
            y.append(rng.uniform() < 1 / (1 + exp(-(0.5 * z - 0.8))) ? 1 : 0)
        }
        return (s, y)
    }

    @Test("Platt scaling: ECE of a miscalibrated model drops below 0.01 on fresh data; a, b recovered")
    func platt() throws {
        let fitData = sample(40_000, seed: 1), test = sample(100_000, seed: 2)
        let raw = CalibrationMetrics.expectedCalibrationError(
            predictions: test.scores.map { 1 / (1 + exp(-$0)) }, labels: test.labels)
        let platt = PlattScaling.fit(scores: fitData.scores, labels: fitData.labels)
        let ece = CalibrationMetrics.expectedCalibrationError(
            predictions: test.scores.map { platt($0) }, labels: test.labels)
        #expect(raw > 0.1, "the raw scores are miscalibrated: ECE \(raw)")
        #expect(ece < 0.01, "ECE after Platt \(ece)")
        #expect(abs(platt.a - 0.5) < 0.05 && abs(platt.b + 0.8) < 0.05, "a \(platt.a) b \(platt.b)")
    }

    @Test("isotonic regression (PAV): monotone, ECE below 0.01 on fresh data")
    func isotonic() throws {
        let fitData = sample(40_000, seed: 3), test = sample(100_000, seed: 4)
        let iso = IsotonicRegression.fit(scores: fitData.scores, labels: fitData.labels)
        #expect(zip(iso.values, iso.values.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(zip(iso.thresholds, iso.thresholds.dropFirst()).allSatisfy { $0 <= $1 })
        let ece = CalibrationMetrics.expectedCalibrationError(
            predictions: test.scores.map { iso($0) }, labels: test.labels)
        #expect(ece < 0.01, "ECE after isotonic \(ece)")
        // PAV on a small case: violators are pooled into their mean.
        let small = IsotonicRegression.fit(scores: [1, 2, 3, 4, 5], labels: [0, 1, 0, 1, 1])
        #expect(small.values == [0, 0.5, 1] && small.thresholds == [1, 2.5, 4.5])
        #expect(small(0) == 0 && small(9) == 1 && small(2.5) == 0.5)
    }

    @Test("calibrators are saved with the model and load back identically")
    func saveLoad() throws {
        let dir = try MPIRun.temporaryDirectory("calibration")
        let path = dir.appendingPathComponent("model.h5").path
        let platt = PlattScaling(a: 0.7, b: -0.2)
        let iso = IsotonicRegression(thresholds: [-1, 0, 2], values: [0.1, 0.3, 0.9])
        do {
            let file = try H5File(path: path, mode: .create)
            try platt.save(to: try file.root.createGroup("ctr_platt"))
            try iso.save(to: try file.root.createGroup("ctr_isotonic"))
        }
        let file = try H5File(path: path, mode: .read)
        #expect(try PlattScaling.load(from: file.root.group("ctr_platt")) == platt)
        #expect(try IsotonicRegression.load(from: file.root.group("ctr_isotonic")) == iso)
        #expect(try file.root.group("ctr_platt").stringAttribute("calibration") == "platt")
    }
}

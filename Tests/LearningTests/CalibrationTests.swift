import Artifacts
import Collective
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

@Suite("Calibration of a trained model, saved with its checkpoint")
struct ModelCalibrationTests {
    @Test("Platt and isotonic fitted on a model's held-out logits are saved in its checkpoint and reload")
    func calibrateTrainedModel() throws {
        var config = CrossMMoEConfig()
        config.fields = 3
        config.dim = 4
        config.tableRows = 500
        config.denseWidth = 3
        config.crossLayers = 1
        config.experts = 2
        config.expertWidths = [8]
        config.towerWidths = [4, 1]
        let model = CrossMMoEModel<Float>(config)
        var tc = TrainerConfig()
        tc.schedule = LearningRateSchedule(base: 0.01)
        let trainer = try DataParallelTrainer(model: model, comm: try Communicator.world(), config: tc)
        let data = SyntheticClicks(fields: 3, denseWidth: 3, tasks: 2, vocabulary: 300)
        for s in 0..<20 { try trainer.step(data.batch(s * 64..<(s + 1) * 64, table: model.table), globalBatchSize: 64) }
        // Held-out examples (never trained on): task 0's logits and labels.
        let heldOut: ClickBatch<Float> = data.batch(100_000..<104_000, table: model.table)
        let logits = model.predict(heldOut)[0].map(Double.init)
        let labels = heldOut.labels[0].map(Double.init)
        let platt = PlattScaling.fit(scores: logits, labels: labels)
        let iso = IsotonicRegression.fit(scores: logits, labels: labels)
        let ecePlatt = CalibrationMetrics.expectedCalibrationError(
            predictions: logits.map { platt($0) }, labels: labels)
        #expect(ecePlatt < 0.05, "in-sample ECE after Platt \(ecePlatt)")
        let path = try MPIRun.temporaryDirectory("calibrated").appendingPathComponent("model.h5").path
        try trainer.saveCheckpoint(
            to: path, calibrators: ["task0_platt": .platt(platt), "task0_isotonic": .isotonic(iso)])
        let loaded = try DataParallelTrainer<CrossMMoEModel<Float>>.calibrators(in: path)
        #expect(loaded == ["task0_platt": .platt(platt), "task0_isotonic": .isotonic(iso)])
        #expect(loaded["task0_platt"]!(logits[0]) == platt(logits[0]))
    }
}

import ArgumentParser
import Collective
import Evaluation
import EventData
import Events
import Feed
import Foundation
import Models
import Ranking

/// `ranker train --data RUN`: the feed's ranker trained on a dataset run's impressions.
struct RankerRunInputs: ParsableArguments {
    @Option(
        help:
            "Root of a dataset run (`mosaic generate` / `ingest`): train on its impressions with the feed's features (needs --embeddings)."
    )
    var data: String?
    @Option(help: "With --data: root of the PinSage embeddings run (`mosaic pinsage embed`).") var embeddings: String?
    @Option(help: "With --data: root of a two-tower run (`mosaic retrieval train`) for the tower-score feature.")
    var userModel: String?
    @Option(help: "With --data: use only events strictly before this time (ms).") var beforeMs: Int64?
    @Option(help: "With --data: hold out the last D days (the evaluation cut of `feed candidates`).")
    var holdoutDays = 0
    @Option(help: "With --data: the last D days before the cut are the validation rows (early stopping, calibration).")
    var validDays = 1
    @Option(
        help:
            "With --data: only impressions at or after this time (ms) become rows; set it to the training cut of the PinSage and two-tower runs (their `--before-ms`), or their vectors leak the rows' saves."
    )
    var rowsFromMs: Int64?
    @Option(
        help:
            "With --data: delayed feedback: an engagement with the pin up to H hours after the impression, in any session and also after the cut, labels it (default: the same session's engagements only)."
    )
    var labelWindowHours: Double?

    /// Trains on the run and saves the model with its calibration to `out` (collective).
    func train(options: RankerTrainingOptions, out: String?, comm: Communicator) throws -> (
        outcome: RankerTrainer.Outcome, train: CTRData, valid: CTRData, history: SequenceLengths
    ) {
        guard let data, let embeddings else { throw ValidationError("--data needs --embeddings") }
        guard (labelWindowHours ?? 0) >= 0 else { throw ValidationError("--label-window-hours must be ≥ 0") }
        let reader = try DatasetReader(root: URL(fileURLWithPath: data))
        let users = try UserEvents.load(world: reader, comm: comm)
        let profiles = try UserProfile.load(world: reader, comm: comm)
        let cut = try beforeMs ?? UserEvents.cut(holdoutDays: holdoutDays, users: users, comm: comm)
        let pins = try PinFeatureTable.load(world: reader, embeddings: URL(fileURLWithPath: embeddings), comm: comm)
        let tower = try userModel.map {
            try TwoTowerModel<Float>.load(
                run: URL(fileURLWithPath: $0), embeddingVersion: pins.embeddingVersion, d: pins.d
            ).model
        }
        let stats = try PinDailyStats.build(users: users, before: cut, comm: comm)
        let (train, valid) = try RankingExamples.build(
            users: users, profiles: profiles, pins: pins, stats: stats, tower: tower, before: cut,
            rowsFrom: rowsFromMs ?? .min, validDays: validDays,
            labelWindow: labelWindowHours.map { Int64($0 * 3_600_000) }, comm: comm)
        if rowsFromMs == nil {
            comm.log(
                "ranker train: warning: no --rows-from-ms; if the PinSage or two-tower runs saw these impressions' saves, validation figures are optimistic"
            )
        }
        comm.log("ranker train: \(train.globalCount) train and \(valid.globalCount) valid impressions before \(cut)")
        guard train.globalCount > 0 else {
            throw ValidationError("\(data): no impression before the cut after --rows-from-ms: nothing to train on")
        }
        if valid.globalCount == 0 {
            comm.log("ranker train: no validation rows (--valid-days \(validDays)): no early stopping, no calibration")
        }
        let outcome = try RankerTrainer.train(
            config: FeedRankerSetup.config(d: pins.d), train: train, valid: valid.globalCount > 0 ? valid : nil,
            options: options, comm: comm, save: out)
        if let out {
            try RankerArtifact.stamp(
                out,
                provenance: .init(embeddingVersion: pins.embeddingVersion, featureVersion: FeedFeatures.version),
                comm: comm)
        }
        let history = try SequenceLengths(lengths: users.map { $0.engaged(before: cut).count }, comm: comm)
        return (outcome, train, valid, history)
    }
}

extension RankerTrain {
    func validate() throws {
        guard checkpointEvery >= 0 else { throw ValidationError("--checkpoint-every must be ≥ 0") }
        if (checkpointEvery > 0 || resume) && out == nil {
            throw ValidationError("--checkpoint-every and --resume need --out (the checkpoint is written beside it)")
        }
    }

    /// The training options from the flags (every mode).
    var trainingOptions: RankerTrainingOptions {
        var options = RankerTrainingOptions()
        options.epochs = epochs
        options.batchSize = batchSize
        options.learningRate = lr
        options.patience = patience
        options.reduceOnPlateau = !noReduceOnPlateau
        options.maxStepsPerEpoch = maxStepsPerEpoch
        options.seed = seed
        options.checkpointEvery = checkpointEvery
        options.resume = resume
        if let out, checkpointEvery > 0 || resume {
            options.checkpointPath = (out.hasSuffix(".h5") ? String(out.dropLast(3)) : out) + ".checkpoint.h5"
        }
        return options
    }

    /// `--data`: the feed's ranker on a dataset run.
    func runOnDataset() throws {
        Communicator.runJob { comm in
            let (outcome, train, valid, history) = try dataset.train(options: trainingOptions, out: out, comm: comm)
            let summary = try RankerSummary.measure(
                outcome: outcome, train: train, valid: valid, history: history, comm: comm)
            if comm.isRoot, let out { try StageSummary.write(summary, to: StageSummary.path(besideArtifact: out)) }
            let sum =
                outcome.model.parameters.values.reduce(0.0) { $0 + Double($1) }
                + outcome.model.tables.reduce(0.0) { $0 + $1.values.reduce(0.0) { $0 + Double($1) } }
            let rss = try comm.peakMemoryPerRank()
            if comm.isRoot {
                print(
                    "RANKER TRAIN ranks=\(comm.size) arch=dcn-mmoe data=\(dataset.data!) train_rows=\(train.globalCount) valid_rows=\(valid.globalCount) best_epoch=\(outcome.bestEpoch) steps=\(outcome.steps) "
                        + String(format: "param_sum=%.6e examples_per_s=%.0f", sum, outcome.examplesPerSecond)
                        + " peak_rss_mib=\(rss)")
                if !summary.tasks.isEmpty {
                    print(
                        "\n| split | task | AUC | GAUC | logloss | ECE | train positive rate |\n|---|---|---|---|---|---|---|"
                    )
                }
                for t in summary.tasks {
                    print(
                        String(
                            format: "| valid | %@ | %.4f | %.4f | %.4f | %@ | %.4f |", t.task, t.auc ?? .nan,
                            t.gauc ?? .nan, t.logloss, t.reliability.map { String(format: "%.4f", $0.ece) } ?? "–",
                            t.trainPositiveRate ?? .nan))
                }
            }
        }
    }
}

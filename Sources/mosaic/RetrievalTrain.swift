import ArgumentParser
import Artifacts
import Collective
import EventData
import Foundation
import Learning
import Models
import ProcessKit
import Publishing

struct RetrievalTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Data-parallel training of the two-tower user model (in-batch sampled softmax, logQ correction).",
        discussion: """
            Examples: each (user, pin) first engaged (closeup or save) before the cut, the user's input \
            encoded from the events strictly before it (point in time), at most --per-user per user (the \
            most recent). Each epoch deals the examples into softmax groups of about --group-size by a \
            hash (the group's other targets are the negatives, logits corrected by log of each target's \
            frequency); a group runs on one rank, so 1, 2 and 4 ranks train the same model. Adam; the \
            dense gradient is summed by the data-parallel trainer. Writes model/two_tower.h5 (parameters, \
            config, model_version = run id, embedding_model_version) under --out. Prints \
            `TWO-TOWER-TRAIN … loss_first=… loss_last=…`.
            """)

    @OptionGroup var inputs: RetrievalInputs
    @Option(help: "Root folder of model runs to write.") var out = "out/two-tower"
    @Option(help: "Run id (also the model version).") var runID = "two-tower"
    @Option(help: "Passes over the examples (10: best of 4, 10, 20 on the validation world).") var epochs = 10
    @Option(help: "Mean examples per softmax group (in-batch negatives = size − 1).") var groupSize = 128
    @Option(help: "Softmax groups per global step.") var groupsPerStep = 8
    @Option(help: "Adam learning rate.") var lr = 0.002
    @Option(help: "Hidden width of the user tower.") var hidden = 128
    @Option(help: "Softmax temperature (scores are cosines; 0.1: best of 0.05, 0.1, 0.2 on the validation world).")
    var temperature = 0.1
    @Option(help: "Half-life of an engagement in the long-term mean, hours.") var halfLifeHours = 240.0
    @Option(help: "Examples per user at most (the most recent).") var perUser = 100
    @Option(help: "Seed of the parameters and of the deal into groups.") var seed: UInt64 = 11
    @Option(help: "Write a checkpoint every N steps to <out>/<run-id>.checkpoint.h5 (0: never).")
    var checkpointEvery = 0
    @Flag(help: "Resume from the checkpoint of a previous run with the same --out and --run-id.") var resume = false

    func validate() throws {
        guard epochs >= 1, groupSize >= 2, groupsPerStep >= 1, lr > 0, hidden >= 1, temperature > 0 else {
            throw ValidationError("--epochs ≥ 1, --group-size ≥ 2, --groups-per-step ≥ 1, --lr/--temperature > 0")
        }
        guard halfLifeHours > 0, perUser >= 1, checkpointEvery >= 0 else {
            throw ValidationError("--half-life-hours > 0, --per-user ≥ 1, --checkpoint-every ≥ 0")
        }
    }

    func run() throws {
        Communicator.runJob { comm in
            let t0 = now()
            let (users, profiles, vectors, embeddingVersion, cut, dataset) = try inputs.load(comm: comm)
            var config = TwoTowerConfig(d: vectors.d)
            config.hidden = hidden
            config.temperature = temperature
            config.halfLifeHours = halfLifeHours
            let examples = try TwoTowerExamples.build(
                users: users, profiles: profiles, vectors: vectors, config: config, before: cut, perUser: perUser,
                batchUsers: inputs.batchUsers, comm: comm)
            let total = try comm.allreduce(Int64(examples.count))
            guard total > 0 else {
                throw ArtifactError(
                    file: inputs.data,
                    message: "no closeup or save before the cut has a PinSage vector: nothing to train on")
            }
            var training = TwoTowerTraining()
            training.epochs = epochs
            training.groupSize = groupSize
            training.groupsPerStep = groupsPerStep
            training.learningRate = lr
            training.seed = seed
            training.checkpointEvery = checkpointEvery
            training.resume = resume
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            training.checkpointPath = URL(fileURLWithPath: out).appendingPathComponent("\(runID).checkpoint.h5").path
            comm.log(
                "two-tower train: \(total) examples from dataset \(dataset) before \(cut), d \(config.d), input \(config.inputWidth), \(epochs) epochs × \(training.stepsPerEpoch(total: Int(total))) steps"
            )
            let model = TwoTowerModel<Float>(config: config, seed: seed)
            var progress = JobProgress(comm: comm, label: "two-tower train")
            let t1 = now()
            let losses = try training.train(model: model, examples: examples, comm: comm) { step, steps in
                progress.update(done: step, total: steps, items: step, unit: "steps")
            }
            let seconds = now() - t1
            let writer = try RunWriter(
                root: URL(fileURLWithPath: out), runID: runID, producer: "mosaic retrieval train",
                config: [
                    "data": dataset, "embeddings": inputs.embeddings, "embedding_model_version": embeddingVersion,
                    "cut_ms": "\(cut)", "epochs": "\(epochs)", "examples": "\(total)",
                ], comm: comm)
            if comm.isRoot {
                let path = try writer.filePath(artifact: "model", name: "two_tower.h5")
                try model.save(path: path, version: runID, embeddingVersion: embeddingVersion)
                try writer.record(artifact: "model", path: path, rows: model.parameters.count)
            }
            try writer.commit()
            let head = losses.prefix(10), tail = losses.suffix(10)
            let first = head.reduce(0, +) / Double(max(1, head.count)),
                last = tail.reduce(0, +) / Double(max(1, tail.count))
            let checksum = model.parameters.valuesArray().reduce(0.0) { $0 + Double($1) }
            if comm.isRoot {
                print(
                    String(
                        format:
                            "TWO-TOWER-TRAIN examples=%lld steps=%d seconds=%.2f total_s=%.2f loss_first=%.6f loss_last=%.6f param_sum=%.6f",
                        total, losses.count, seconds, now() - t0, first, last, checksum))
            }
        }
    }
}

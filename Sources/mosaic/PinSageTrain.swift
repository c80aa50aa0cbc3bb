import ArgumentParser
import Artifacts
import Collective
import Foundation
import Graph
import Learning
import Linalg
import Models
import ProcessKit
import Publishing

struct PinSageTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract:
            "Data-parallel PinSage training on walk co-visit / consecutive-save pairs against in-batch and hard negatives.",
        discussion: """
            Positive pairs: a query pin and a pin drawn from its top-T importance neighbours by weight (a walk \
            co-visit) or, with probability --sequence-positives, from the pins saved right before or after it by the \
            same user (consecutive saves). Queries are drawn uniformly from the pins with neighbours, O(batch) per \
            step. Each global step has --micro-batches micro-batches of --micro-batch-size queries; the other \
            positives of a micro-batch are its negatives (max-margin loss, or the in-batch sampled softmax with logQ \
            correction with --softmax-temperature); PageRank-band hard negatives with --hard-ramp. Micro-batch i runs on rank i mod size and its neighbours' features are fetched from \
            their owners (alltoallv), so the gradient is the same for any rank count. Gradients are summed by the \
            Learning data-parallel trainer (Adam). Writes model/pinsage.h5 with the attribute model_version. \
            Prints `PINSAGE-TRAIN … loss_first=… loss_last=…`.
            """)

    @OptionGroup var inputs: PinSageInputs
    @Option(help: "Root folder of model runs to write.") var out = "out/pinsage"
    @Option(help: "Run id (also the model version).") var runID = "pinsage"
    @Option(help: "Convolution layers K.") var layers = 2
    @Option(help: "Hidden width (neighbour transform).") var hidden = 64
    @Option(help: "Embedding width.") var dim = 64
    @Option(help: "Training steps.") var steps = 200
    @Option(help: "Micro-batches per global step.") var microBatches = 8
    @Option(help: "Queries per micro-batch (in-batch negatives = size − 1).") var microBatchSize = 32
    @Option(help: "Adam learning rate.") var lr = 0.003
    @Option(help: "Margin of the max-margin loss.") var margin = 0.2
    @Option(help: "Seed (parameters and sampling).") var seed: UInt64 = 5
    @Option(help: "Width of a learnable (hashed) id embedding appended to the content; 0 = content only.") var idDim = 0
    @Option(help: "Rows of the hashed id embedding table.") var idRows = 1 << 16
    @Option(
        help:
            "Hard negatives ramp in over this many steps (curriculum; 0 = in-batch negatives only): from the walks' PageRank band (`graph walks --hard-count`) when present, else two walk-hops away."
    )
    var hardRamp = 0
    @Option(help: "Hard negatives per query at the end of the ramp (PageRank band only).") var hardPerQuery = 1
    @Flag(
        inversion: .prefixedNo,
        help:
            "Final dense layers G2·ReLU(G1·z) after the convolutions (no ReLU before the L2 normalisation; off by default: it lowered Beauty validation HR@10 in every configuration tried)."
    )
    var outputLayer = false
    @Option(
        help:
            "Probability that a positive is a consecutive save (a pin the same user saved within --sequence-window saves, from the dataset's save events) instead of a walk co-visit; 0 = walk co-visits only."
    )
    var sequencePositives = 0.0
    @Option(help: "Consecutive-save window (saves apart).") var sequenceWindow = 1
    @Option(help: "Consecutive-save partners kept per pin.") var sequenceWidth = 10
    @Option(
        help:
            "Leave out each user's last N saves when making consecutive-save pairs (2 = as `graph build --hold-out 2`)."
    )
    var holdOut = 0
    @Option(
        help:
            "0 = max-margin loss against in-batch negatives (the paper's); > 0 = in-batch sampled softmax with logQ correction at this temperature instead (hard negatives keep the max-margin term)."
    )
    var softmaxTemperature = 0.0
    @Option(help: "Learning-rate decay: constant or cosine (to lr × 0.05 at the last step).") var lrDecay = "constant"
    @Option(help: "Linear learning-rate warm-up steps.") var warmup = 0

    func validate() throws {
        guard layers >= 1, hidden > 0, dim > 0, steps >= 0, microBatches > 0, microBatchSize >= 2 else {
            throw ValidationError("--layers ≥ 1, --hidden/--dim > 0, --micro-batches > 0, --micro-batch-size ≥ 2")
        }
        guard (0...1).contains(sequencePositives), sequenceWindow >= 1, sequenceWidth >= 1, holdOut >= 0 else {
            throw ValidationError(
                "--sequence-positives in [0, 1], --sequence-window ≥ 1, --sequence-width ≥ 1, --hold-out ≥ 0")
        }
        guard softmaxTemperature >= 0 else { throw ValidationError("--softmax-temperature ≥ 0") }
        guard ["constant", "cosine"].contains(lrDecay), warmup >= 0 else {
            throw ValidationError("--lr-decay constant|cosine, --warmup ≥ 0")
        }
    }

    func run() throws {
        Communicator.runJob { comm in
            let t0 = now()
            let store = try inputs.load(
                comm,
                sequence: sequencePositives > 0
                    ? SequencePairs.Parameters(window: sequenceWindow, holdOut: holdOut, width: sequenceWidth) : nil)
            let model = PinSageModel<Float>(
                config: PinSageConfig(
                    dIn: store.dIn, dHidden: hidden, dOut: dim, layers: layers, margin: margin, idDim: idDim,
                    idRows: idRows, outputLayer: outputLayer, softmaxTemperature: softmaxTemperature),
                seed: seed)
            var config = TrainerConfig()
            config.schedule = LearningRateSchedule(
                base: lr, warmupSteps: warmup,
                decay: lrDecay == "cosine" ? .cosine(totalSteps: steps, final: lr * 0.05) : .constant)
            let trainer = try DataParallelTrainer(model: model, comm: comm, config: config)
            var sampler = try PinSageSampler(
                store: store, microBatches: microBatches, microBatchSize: microBatchSize, seed: seed)
            sampler.hardRampSteps = hardRamp
            sampler.hardPerQuery = hardPerQuery
            sampler.sequenceProbability = sequencePositives
            if softmaxTemperature > 0 { try sampler.preparePositiveProbabilities(store: store) }
            guard sampler.candidateCount > 0 else {
                throw GraphError("\(inputs.walks): no pin has importance neighbours; nothing to train on")
            }
            comm.log(
                "pinsage train: \(sampler.candidateCount) query pins, d_in \(store.dIn) + id \(idDim), K \(layers), \(steps) steps × \(microBatches) × \(microBatchSize)"
            )
            var losses: [Double] = []
            var progress = JobProgress(comm: comm, label: "pinsage train")
            let t1 = now()
            var sampleSeconds = 0.0
            for s in 0..<steps {
                let ts = now()
                let batch = try sampler.batch(step: s, layers: layers, store: store)
                sampleSeconds += now() - ts
                losses.append(try trainer.step(batch, globalBatchSize: microBatches * microBatchSize))
                progress.update(
                    done: s + 1, total: steps, items: (s + 1) * microBatches * microBatchSize, unit: "examples")
            }
            let seconds = now() - t1
            try trainer.verifyReplicas()
            let writer = try RunWriter(
                root: URL(fileURLWithPath: out), runID: runID, producer: "mosaic pinsage train",
                config: ["walks": inputs.walks, "data": inputs.data, "steps": "\(steps)", "layers": "\(layers)"],
                comm: comm)
            if comm.isRoot {
                let path = try writer.filePath(artifact: "model", name: "pinsage.h5")
                try model.save(path: path, version: runID)
                try writer.record(artifact: "model", path: path, rows: model.parameters.count)
            }
            try writer.commit()
            let head = losses.prefix(10), tail = losses.suffix(10)
            let first = head.isEmpty ? 0 : head.reduce(0, +) / Double(head.count),
                last = tail.isEmpty ? 0 : tail.reduce(0, +) / Double(tail.count)
            let examples = Double(steps * microBatches * microBatchSize)
            comm.log(
                String(
                    format: "pinsage train: %.2fs total, %.2fs training (%.2fs sampling/fetching), %.0f examples/s",
                    now() - t0, seconds, sampleSeconds, examples / seconds))
            let checksum =
                model.parameters.valuesArray().reduce(0.0) { $0 + Double($1) }
                + (model.idTable?.values.reduce(0.0) { $0 + Double($1) } ?? 0)
            if comm.isRoot {
                print(
                    String(
                        format:
                            "PINSAGE-TRAIN steps=%d examples_per_s=%.0f loss_first=%.6f loss_last=%.6f param_sum=%.6f",
                        steps, examples / seconds, first, last, checksum))
                print("LOSSES " + losses.map { String(format: "%.6f", $0) }.joined(separator: " "))
            }
        }
    }
}

import ArgumentParser
import Collective
import Foundation
import Learning

/// `mosaic selftest train`: trains a small DCN-v2 + MMoE model on synthetic clicks with the
/// data-parallel trainer, so the test suite can check that 1, 2 and 4 ranks give the same
/// parameters, that a run stopped and resumed from a checkpoint equals an uninterrupted one,
/// and that a diverged replica is reported by rank.
struct SelfTestTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Small data-parallel training run; writes the final checkpoint to --out.")

    @Option(help: "Training steps in total.") var steps = 12
    @Option(help: "Global batch size (split over ranks).") var globalBatch = 48
    @Option(help: "Final checkpoint (HDF5), written by rank 0.") var out: String
    @Option(help: "Checkpoint file for resuming.") var checkpoint: String?
    @Option(help: "Save --checkpoint every N steps (0 = never).") var checkpointEvery = 0
    @Option(help: "Exit after this step (after its checkpoint), as if the job had been killed.") var stopAfter: Int?
    @Flag(help: "Resume from --checkpoint.") var resume = false
    @Option(help: "Dense optimizer: sgd, adam, adamw, adagrad.") var optimizer = "adam"
    @Option(help: "Perturb one parameter on this rank after step 2, then check the replicas (divergence test).")
    var corruptRank: Int?
    @Option(help: "Replica checksum every N steps.") var checksumEvery = 4
    @Flag(
        help: "Exchange gradients after backward with blocking collectives instead of overlapping them with backward.")
    var blockingExchange = false
    @Flag(help: "Finish the allgather of updated values inside each step instead of during the next forward.")
    var gatherAfterStep = false

    static func optimizerKind(_ name: String) throws -> OptimizerKind {
        switch name {
        case "sgd": return .sgd(momentum: 0.9)
        case "adam": return .adam
        case "adamw": return .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01)
        case "adagrad": return .adagrad(epsilon: 1e-8, initialAccumulator: 0.1)
        default: throw ValidationError("unknown optimizer \(name) (sgd, adam, adamw, adagrad)")
        }
    }

    func run() throws {
        let kind = try Self.optimizerKind(optimizer)
        Communicator.runJob { comm in
            var config = CrossMMoEConfig()
            config.fields = 4; config.dim = 4; config.tableRows = 997; config.denseWidth = 3
            config.crossLayers = 2; config.crossKind = .lowRank(rank: 3, experts: 2)
            config.experts = 2; config.expertWidths = [16, 8]; config.towerWidths = [8, 1]; config.tasks = 2
            config.dropout = 0.1
            let model = CrossMMoEModel<Float>(config)
            var tc = TrainerConfig()
            tc.dense = kind
            tc.sparse = kind
            tc.schedule = LearningRateSchedule(
                base: 0.01, warmupSteps: 3, decay: .cosine(totalSteps: steps, final: 0.001))
            tc.checksumEvery = checksumEvery
            tc.bucketElements = 1000  // several buckets even for this small model
            tc.overlapCommunication = !blockingExchange
            tc.gatherDuringForward = !gatherAfterStep
            let trainer = try DataParallelTrainer(model: model, comm: comm, config: tc)
            if resume, let checkpoint {
                try trainer.loadCheckpoint(from: checkpoint)
                comm.log("resumed from \(checkpoint) at step \(trainer.step)")
            }
            let data = SyntheticClicks(
                fields: config.fields, denseWidth: config.denseWidth, tasks: config.tasks, vocabulary: 2000)
            var loss = 0.0
            while trainer.step < steps {
                let s = trainer.step
                let slice = BatchSharding.slice(globalBatch: globalBatch, rank: comm.rank, size: comm.size)
                let first = s * globalBatch
                let batch = data.batch((first + slice.lowerBound)..<(first + slice.upperBound), table: model.table)
                loss = try trainer.step(batch, globalBatchSize: globalBatch)
                if let corruptRank, trainer.step == 2 {
                    // The sharded update re-synchronises every dense value and every touched row
                    // each step, so the corruption is checked right away, before a step heals it.
                    if corruptRank == comm.rank { model.parameters.values[0] += 0.5 }
                    try trainer.verifyReplicas()
                }
                comm.log("step \(trainer.step)/\(steps) loss \(String(format: "%.5f", loss))")
                if let checkpoint, checkpointEvery > 0, trainer.step % checkpointEvery == 0 {
                    try trainer.saveCheckpoint(to: checkpoint)
                }
                if let stopAfter, trainer.step == stopAfter {
                    if comm.isRoot { print("TRAIN STOPPED ranks=\(comm.size) step=\(trainer.step)") }
                    return
                }
            }
            try trainer.saveCheckpoint(to: out)
            if comm.isRoot { print("TRAIN OK ranks=\(comm.size) step=\(trainer.step) loss=\(loss)") }
        }
    }
}

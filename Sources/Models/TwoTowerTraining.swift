import Collective
import EventData
import Foundation
import Learning

/// Data-parallel training of the two-tower model on `TwoTowerExamples`.
///
/// Each epoch deals every example into one of G = ⌊N / groupSize⌋ softmax groups by a hash of
/// (seed, epoch, example key); group g lives on rank g mod size (one alltoallv per epoch), and
/// step s trains groups s·K ..< (s + 1)·K (K = `groupsPerStep`). A group never spans ranks and
/// its members do not depend on the rank count, so 1, 2 or 4 ranks compute the same loss and
/// gradient up to the order of float sums. Memory: this rank's examples, twice during the deal.
public struct TwoTowerTraining: Sendable {
    /// Passes over the examples, mean examples per softmax group, groups per global step.
    public var epochs = 10, groupSize = 128, groupsPerStep = 8
    /// Adam learning rate, and the seed of the deal.
    public var learningRate = 0.002
    public var seed: UInt64 = 11
    /// Write a checkpoint every this many steps (0: never) to `checkpointPath`; with `resume`,
    /// start from the checkpoint there if it exists.
    public var checkpointEvery = 0
    public var checkpointPath: String? = nil
    public var resume = false

    public init() {}

    /// Steps per epoch for `total` examples over all ranks.
    public func stepsPerEpoch(total: Int) -> Int {
        let groups = max(1, total / max(1, groupSize))
        return (groups + groupsPerStep - 1) / groupsPerStep
    }

    /// Trains `model` (collective). `progress(step, steps)` runs after every step on every
    /// rank. Returns the loss of every step run (not those skipped by a resume).
    public func train(
        model: TwoTowerModel<Float>, examples: TwoTowerExamples, comm: Communicator,
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> [Double] {
        var config = TrainerConfig()
        config.schedule = LearningRateSchedule(base: learningRate)
        config.seed = seed
        let trainer = try DataParallelTrainer(model: model, comm: comm, config: config)
        if resume, let path = checkpointPath, FileManager.default.fileExists(atPath: path) {
            try trainer.loadCheckpoint(from: path)
            comm.log("two-tower train: resumed from \(path) at step \(trainer.step)")
        }
        let total = Int(try comm.allreduce(Int64(examples.count)))
        let perEpoch = stepsPerEpoch(total: total), steps = epochs * perEpoch
        var losses: [Double] = []
        for epoch in 0..<epochs where (epoch + 1) * perEpoch > trainer.step {
            let dealt = try deal(examples, epoch: epoch, total: total, comm: comm)
            for s in (epoch * perEpoch)..<((epoch + 1) * perEpoch) where s >= trainer.step {
                let batch = dealt.batch(
                    groups: ((s - epoch * perEpoch) * groupsPerStep)..<((s - epoch * perEpoch + 1) * groupsPerStep))
                let global = Int(try comm.allreduce(Int64(batch.examples)))
                losses.append(global > 0 ? try trainer.step(batch.batch, globalBatchSize: global) : 0)
                if checkpointEvery > 0, let path = checkpointPath, trainer.step % checkpointEvery == 0 {
                    try trainer.saveCheckpoint(to: path)
                }
                progress(s + 1, steps)
            }
        }
        try trainer.verifyReplicas()
        return losses
    }

    /// One epoch's deal: this rank's groups and their examples, ordered by (group, key).
    struct Dealt {
        var width: Int, d: Int
        var inputs: [Float] = [], targets: [Float] = [], logQ: [Float] = [], pins: [Int64] = []
        var start: [Int: Int] = [:], end: [Int: Int] = [:]

        /// This rank's share of the groups in `groups`.
        func batch(groups: Range<Int>) -> (batch: TwoTowerBatch, examples: Int) {
            var batch = TwoTowerBatch()
            var n = 0
            for g in groups {
                guard let a = start[g], let b = end[g] else { continue }
                batch.groups.append(
                    (
                        Array(inputs[a * width..<b * width]), Array(pins[a..<b]), Array(targets[a * d..<b * d]),
                        Array(logQ[a..<b])
                    ))
                n += b - a
            }
            return (batch, n)
        }
    }

    func deal(_ e: TwoTowerExamples, epoch: Int, total: Int, comm: Communicator) throws -> Dealt {
        let p = comm.size, groups = max(1, total / max(1, groupSize))
        let w = e.count > 0 ? e.inputs.count / e.count : 0, d = e.count > 0 ? e.targets.count / e.count : 0
        let salt = Int64(bitPattern: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(epoch))
        let group = e.keys.map { Int(Sharding.hash(Int64(bitPattern: $0) ^ salt) % UInt64(groups)) }
        var order = [[Int]](repeating: [], count: p)
        for i in 0..<e.count { order[group[i] % p].append(i) }
        let sendOrder = order.flatMap { $0 }
        var floats: [Float] = [], ints: [Int64] = []
        floats.reserveCapacity(sendOrder.count * (w + d + 1))
        for i in sendOrder {
            floats += e.inputs[i * w..<(i + 1) * w]
            floats += e.targets[i * d..<(i + 1) * d]
            floats.append(e.logQ[i])
            ints += [e.pins[i], Int64(bitPattern: e.keys[i]), Int64(group[i])]
        }
        // Every rank must agree on the widths even when it holds no examples.
        let width = Int(try comm.allreduce(Int64(w), op: .max)), dim = Int(try comm.allreduce(Int64(d), op: .max))
        let f = try comm.alltoallv(floats, sendCounts: order.map { $0.count * (width + dim + 1) })
        let n = try comm.alltoallv(ints, sendCounts: order.map { $0.count * 3 })
        let m = n.values.count / 3
        let sorted = (0..<m).sorted {
            (n.values[3 * $0 + 2], UInt64(bitPattern: n.values[3 * $0 + 1]), n.values[3 * $0])
                < (n.values[3 * $1 + 2], UInt64(bitPattern: n.values[3 * $1 + 1]), n.values[3 * $1])
        }
        var out = Dealt(width: width, d: dim)
        let stride = width + dim + 1
        for (k, i) in sorted.enumerated() {
            let g = Int(n.values[3 * i + 2])
            if out.start[g] == nil { out.start[g] = k }
            out.end[g] = k + 1
            out.inputs += f.values[i * stride..<i * stride + width]
            out.targets += f.values[i * stride + width..<i * stride + width + dim]
            out.logQ.append(f.values[i * stride + width + dim])
            out.pins.append(n.values[3 * i])
        }
        return out
    }
}

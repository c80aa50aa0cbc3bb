import Artifacts
import Collective
import Evaluation
import Foundation
import Learning
import Linalg

/// Training settings of `mosaic ranker train`.
public struct RankerTrainingOptions: Sendable {
    /// Maximum epochs; global batch (split over ranks); Adam learning rate.
    public var epochs = 30, batchSize = 4096
    public var learningRate = 1e-3
    /// Stop after this many epochs without a better validation AUC (mean over tasks); the best epoch's
    /// parameters are restored at the end.
    public var patience = 2
    /// Multiply the learning rate by 0.1 after an epoch without improvement (FuxiCTR's
    /// reduce-on-plateau).
    public var reduceOnPlateau = true
    /// Rows per scoring batch.
    public var evalBatch = 8192
    /// Seed of the epoch shuffles (stream (seed, 0, epoch); the same on every rank).
    public var seed: UInt64 = 2021
    /// Optional cap on steps per epoch (for tests; 0 = whole epoch).
    public var maxStepsPerEpoch = 0
    /// Per-task calibration fitted on the validation logits after training and saved with the
    /// model: "platt", "isotonic" or "none".
    public var calibration = "platt"
    /// Write a checkpoint (trainer state and the loop's: epoch, step, learning rate, best epoch
    /// and its parameters) to `checkpointPath` every this many steps and after every epoch
    /// (0: never).
    public var checkpointEvery = 0
    public var checkpointPath: String?
    /// Continue from `checkpointPath`: the run ends with the model of an uninterrupted run.
    public var resume = false
    public init() {}
}

/// Per-task metrics of a scored split.
public struct RankerMetrics: Sendable, CustomStringConvertible {
    public var auc: [Double], logloss: [Double]
    public var description: String {
        zip(auc, logloss).map { String(format: "AUC %.4f logloss %.4f", $0, $1) }.joined(separator: "; ")
    }
}

/// Data-parallel training of a ranker with early stopping on validation AUC, and batch scoring.
public enum RankerTrainer {
    /// The rows of `data` this rank scores: its own rows when sharded, else its contiguous
    /// slice of the (replicated) rows. Local row indices.
    public static func localRows(_ data: CTRData, comm: Communicator) -> Range<Int> {
        data.isSharded ? 0..<data.count : BatchSharding.slice(globalBatch: data.count, rank: comm.rank, size: comm.size)
    }

    /// Per-task logits (tasks × rows) of this rank's rows (`localRows`), position nulled,
    /// dropout off. Not collective: memory proportional to the rank's rows.
    public static func scoreLocal<M: RankingModel>(_ model: M, _ data: CTRData, comm: Communicator, batch: Int = 8192)
        -> [[Float]] where M.Scalar == Float
    {
        let mine = localRows(data, comm: comm)
        var local = [[Float]](repeating: [], count: model.config.tasks.count)
        var s = mine.lowerBound
        let table = model.tables[0]
        while s < mine.upperBound {
            let e = min(s + batch, mine.upperBound)
            let b: RankerBatch<Float> = data.batch(s..<e, firstIndex: s, config: model.config, table: table)
            let z = model.logits(b, training: false, step: 0)
            for k in z.indices { local[k] += z[k] }
            s = e
        }
        return local
    }

    /// Labels per task (tasks × rows) of this rank's rows (`localRows`).
    public static func localLabels(_ data: CTRData, comm: Communicator) -> [[Float]] {
        let mine = localRows(data, comm: comm)
        return data.labels.map { Array($0[mine]) }
    }

    /// Per-task logits (tasks × count) of every row of `data`, each rank scoring its rows
    /// (`scoreLocal`) and the slices gathered on every rank (for evaluation harnesses on small
    /// data; training and `ranker score` never gather). Collective.
    public static func score<M: RankingModel>(_ model: M, _ data: CTRData, comm: Communicator, batch: Int = 8192)
        throws -> [[Float]] where M.Scalar == Float
    {
        let local = scoreLocal(model, data, comm: comm, batch: batch)
        if comm.size == 1 { return local }
        return try local.map { try comm.allgatherv($0).values }
    }

    /// AUC and logloss per task over all ranks' rows, from each rank's own logits and labels
    /// (tasks × rows): AUC by a distributed sample sort (`DistributedScores`), so no rank holds
    /// more than its share; equal to `metrics(logits:labels:)` on the gathered rows. Collective.
    public static func distributedMetrics(logits: [[Float]], labels: [[Float]], comm: Communicator) throws
        -> RankerMetrics
    {
        var auc: [Double] = [], ll: [Double] = []
        for k in logits.indices {
            let z = logits[k].map(Double.init), y = labels[k].map(Double.init)
            let sorted = try DistributedScores.sort(scores: z, labels: y, comm: comm)
            auc.append(try sorted.auc(comm: comm) ?? .nan)
            ll.append(try DistributedScores.logloss(logits: z, labels: y, comm: comm))
        }
        return RankerMetrics(auc: auc, logloss: ll)
    }

    /// Per-task calibrators fitted on every rank's own held-out logits and labels (tasks ×
    /// rows) without gathering them: Platt by allreduced Newton steps, isotonic by pooling
    /// over a distributed sort. Equal on every rank. Collective.
    public static func distributedCalibrators(
        kind: String, logits: [[Float]], labels: [[Float]], tasks: [String], comm: Communicator
    ) throws -> [String: Calibrator] {
        var out: [String: Calibrator] = [:]
        for k in logits.indices {
            let s = logits[k].map(Double.init), y = labels[k].map(Double.init)
            switch kind {
            case "platt": out[tasks[k]] = .platt(try PlattScaling.fit(scores: s, labels: y, comm: comm))
            case "isotonic":
                let sorted = try DistributedScores.sort(scores: s, labels: y, comm: comm)
                out[tasks[k]] = .isotonic(
                    try IsotonicRegression.fit(globallySorted: sorted.scores, labels: sorted.labels, comm: comm))
            case "none": break
            default: throw RankerError("calibration is '\(kind)', expected platt, isotonic or none")
            }
        }
        return out
    }

    /// The result of `train`.
    public struct Outcome {
        public var model: any RankingModel<Float>
        public var bestEpoch: Int
        public var valid: RankerMetrics?
        public var examplesPerSecond: Double
        public var steps: Int
        /// Per-task calibrators by task name (empty without validation data or calibration).
        public var calibrators: [String: Calibrator]
    }

    /// Trains the architecture of `config` on `train`, early-stopping on `valid` when given.
    /// Collective. Each epoch visits the rows in the order of an `EpochPermutation`; each step's
    /// global batch is split over ranks. When `train` is sharded (`CTRData.readCSVShard`), the
    /// ranks exchange the rows of each step's batch (`alltoallv`) so that rank r processes the
    /// same examples as without sharding: 1, 2 or 4 ranks train the same model.
    /// `checkpoint`: path of the saved model (config + parameters) written at the end.
    public static func train(
        config: RankerConfig, train: CTRData, valid: CTRData?, options: RankerTrainingOptions, comm: Communicator,
        save path: String? = nil
    ) throws -> Outcome {
        try config.validate()
        switch config.architecture {
        case .dcnMMoE:
            return try run(RankerModel<Float>(config), train, valid, options, comm, path)
        case .logistic:
            return try run(LogisticRanker<Float>(config), train, valid, options, comm, path)
        }
    }

    static func trainerConfig(_ options: RankerTrainingOptions, lr: Double) -> TrainerConfig {
        var tc = TrainerConfig()
        tc.dense = .adam
        tc.sparse = .adam
        tc.schedule = LearningRateSchedule(base: lr)
        tc.checksumEvery = 200
        tc.seed = options.seed
        return tc
    }

    static func run<M: RankingModel>(
        _ model: M, _ train: CTRData, _ valid: CTRData?, _ options: RankerTrainingOptions, _ comm: Communicator,
        _ path: String?
    ) throws -> Outcome where M.Scalar == Float {
        (model as? RankerModel<Float>)?.addsTableDecay = comm.isRoot
        var loop = TrainingLoopState(lr: options.learningRate)
        var trainer = try DataParallelTrainer(model: model, comm: comm, config: trainerConfig(options, lr: loop.lr))
        if options.resume, let path = options.checkpointPath {
            loop = try TrainingLoopState.read(path)
            trainer = try DataParallelTrainer(model: model, comm: comm, config: trainerConfig(options, lr: loop.lr))
            try trainer.loadCheckpoint(from: path)
            comm.log("ranker train: resumed from \(path) at epoch \(loop.epoch), step \(loop.step) of the epoch")
        }
        func checkpoint() throws {
            guard let path = options.checkpointPath else { return }
            let staging = path + ".staging"
            try trainer.saveCheckpoint(to: staging)
            if comm.isRoot {
                try loop.write(staging)
                if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
                try FileManager.default.moveItem(atPath: staging, toPath: path)
            }
            try comm.barrier()
        }
        let n = train.globalCount, b = options.batchSize
        let validLabels = valid.map { localLabels($0, comm: comm) }
        var bestMetrics: RankerMetrics? = nil
        let started = Date()
        var trainSeconds = 0.0, examples = 0
        let stepsPerEpoch =
            options.maxStepsPerEpoch > 0 ? min(options.maxStepsPerEpoch, (n + b - 1) / b) : (n + b - 1) / b
        for epoch in loop.epoch...max(loop.epoch, options.epochs) where epoch <= options.epochs && !loop.stopped {
            let order = EpochPermutation(n: n, seed: options.seed, epoch: epoch)
            let t0 = Date()
            for s in loop.step..<stepsPerEpoch {
                let lo = s * b, hi = min(n, lo + b)
                let slice = BatchSharding.slice(globalBatch: hi - lo, rank: comm.rank, size: comm.size)
                let firstIndex = (epoch - 1) * n + lo + slice.lowerBound
                let batch: RankerBatch<Float>
                if train.isSharded && comm.size > 1 {
                    let mine = try exchangeRows(train, positions: lo..<hi, order: order, comm: comm)
                    batch = mine.batch(
                        0..<mine.count, firstIndex: firstIndex, config: model.config, table: model.tables[0])
                } else {
                    let rows = (lo + slice.lowerBound..<lo + slice.upperBound).map { order($0) - train.shardStart }
                    batch = train.batch(rows, firstIndex: firstIndex, config: model.config, table: model.tables[0])
                }
                loop.lossSum += try trainer.step(batch, globalBatchSize: hi - lo)
                loop.step = s + 1
                examples += hi - lo
                if options.checkpointEvery > 0 && trainer.step % options.checkpointEvery == 0 && s + 1 < stepsPerEpoch {
                    try checkpoint()
                }
            }
            trainSeconds += Date().timeIntervalSince(t0)
            let meanLoss = loop.lossSum / Double(stepsPerEpoch)
            if let valid {
                let m = try distributedMetrics(
                    logits: scoreLocal(model, valid, comm: comm, batch: options.evalBatch), labels: validLabels!,
                    comm: comm)
                let elapsed = Date().timeIntervalSince(started)
                comm.log(
                    String(
                        format: "epoch %d/%d train loss %.5f valid %@ (%.0f s, ETA ≤ %.0f s)", epoch, options.epochs,
                        meanLoss, m.description, elapsed, elapsed / Double(epoch) * Double(options.epochs - epoch)))
                let meanAUC = m.auc.reduce(0, +) / Double(m.auc.count)
                if meanAUC > loop.bestAUC {
                    loop.bestAUC = meanAUC
                    loop.bestEpoch = epoch
                    bestMetrics = m
                    loop.bad = 0
                    loop.best = (model.parameters.valuesArray(), model.tables.map(\.values))
                } else {
                    loop.bad += 1
                    loop.stopped = loop.bad >= options.patience
                    if !loop.stopped && options.reduceOnPlateau {
                        // A new trainer at lr·0.1 that continues from the current state (optimizer
                        // moments and step restored through a checkpoint).
                        loop.lr *= 0.1
                        let tmp = (path ?? NSTemporaryDirectory() + "/mosaic-ranker-\(getpid())") + ".plateau.h5"
                        let shared = try comm.broadcast(string: tmp)
                        try trainer.saveCheckpoint(to: shared)
                        trainer = try DataParallelTrainer(
                            model: model, comm: comm, config: trainerConfig(options, lr: loop.lr))
                        try trainer.loadCheckpoint(from: shared)
                        try comm.barrier()
                        if comm.isRoot { try? FileManager.default.removeItem(atPath: shared) }
                        comm.log(String(format: "valid AUC did not improve: learning rate → %.1e", loop.lr))
                    }
                }
            } else {
                comm.log(String(format: "epoch %d/%d train loss %.5f", epoch, options.epochs, meanLoss))
                loop.bestEpoch = epoch
            }
            // The epoch is done: a checkpoint from here on resumes at the next one.
            loop.epoch = epoch + 1
            loop.step = 0
            loop.lossSum = 0
            if options.checkpointEvery > 0 { try checkpoint() }
            if loop.stopped { break }
        }
        if let best = loop.best {
            model.parameters.setValues(best.params)
            for (t, v) in zip(model.tables, best.tables) { t.values = v }
            if bestMetrics == nil, let valid {
                // Resumed after the best epoch: its metrics again, from its restored parameters.
                bestMetrics = try distributedMetrics(
                    logits: scoreLocal(model, valid, comm: comm, batch: options.evalBatch), labels: validLabels!,
                    comm: comm)
            }
        }
        var cal: [String: Calibrator] = [:]
        if let valid, options.calibration != "none" {
            cal = try distributedCalibrators(
                kind: options.calibration, logits: scoreLocal(model, valid, comm: comm, batch: options.evalBatch),
                labels: validLabels!, tasks: model.config.tasks, comm: comm)
        }
        if let path { try RankerArtifact.save(trainer: trainer, to: path, calibrators: cal) }
        return Outcome(
            model: model, bestEpoch: loop.bestEpoch, valid: bestMetrics,
            examplesPerSecond: Double(examples) / max(trainSeconds, 1e-9), steps: trainer.step, calibrators: cal)
    }

    /// This rank's part of the global batch at epoch positions `positions` (rows `order(p)`),
    /// gathered from the ranks that hold them: every rank computes the whole batch's rows and
    /// owners, sends the rows it holds to the ranks whose batch slice needs them (`alltoallv` of
    /// ids and of labels/features), and receives its slice's rows in position order. Collective.
    static func exchangeRows(_ data: CTRData, positions: Range<Int>, order: EpochPermutation, comm: Communicator)
        throws -> CTRData
    {
        precondition(data.sequences == nil, "exchangeRows: sharded data with sequences is not supported")
        let p = comm.size, me = comm.rank, f = data.fields, tasks = data.labels.count
        let floatsPerRow = tasks + data.denseWidth + data.contentWidth
        let hasPositions = !data.positions.isEmpty
        let rows = positions.map { order($0) }
        let owners = rows.map { data.owner(ofRow: $0) }
        var ints: [Int64] = [], floats: [Float] = []
        var intCounts = [Int](repeating: 0, count: p), floatCounts = [Int](repeating: 0, count: p)
        for q in 0..<p {
            let slice = BatchSharding.slice(globalBatch: positions.count, rank: q, size: p)
            for j in slice where owners[j] == me {
                let i = rows[j] - data.shardStart
                ints += data.ids[i * f..<(i + 1) * f]
                if hasPositions { ints.append(Int64(data.positions[i])) }
                for k in 0..<tasks { floats.append(data.labels[k][i]) }
                if data.denseWidth > 0 { floats += data.dense[i * data.denseWidth..<(i + 1) * data.denseWidth] }
                if data.contentWidth > 0 { floats += data.content[i * data.contentWidth..<(i + 1) * data.contentWidth] }
                intCounts[q] += f + (hasPositions ? 1 : 0)
                floatCounts[q] += floatsPerRow
            }
        }
        let (gotInts, inCounts) = try comm.alltoallv(ints, sendCounts: intCounts)
        let (gotFloats, _) = try comm.alltoallv(floats, sendCounts: floatCounts)
        // Rows arrive grouped by sender, each group in position order: merge by position.
        var intAt = [Int](repeating: 0, count: p), floatAt = [Int](repeating: 0, count: p)
        var rowsFrom = inCounts.map { $0 / (f + (hasPositions ? 1 : 0)) }
        var si = 0, sf = 0
        for q in 0..<p {
            intAt[q] = si
            floatAt[q] = sf
            si += inCounts[q]
            sf += rowsFrom[q] * floatsPerRow
        }
        var out = CTRData(fields: f, ids: [], labels: [[Float]](repeating: [], count: tasks))
        out.denseWidth = data.denseWidth
        out.contentWidth = data.contentWidth
        let slice = BatchSharding.slice(globalBatch: positions.count, rank: me, size: p)
        for j in slice {
            let o = owners[j]
            precondition(rowsFrom[o] > 0, "exchangeRows: missing a row from rank \(o)")
            rowsFrom[o] -= 1
            out.ids += gotInts[intAt[o]..<intAt[o] + f]
            intAt[o] += f
            if hasPositions {
                out.positions.append(Int(gotInts[intAt[o]]))
                intAt[o] += 1
            }
            var x = floatAt[o]
            for k in 0..<tasks { out.labels[k].append(gotFloats[x + k]) }
            x += tasks
            if data.denseWidth > 0 { out.dense += gotFloats[x..<x + data.denseWidth] }
            x += data.denseWidth
            if data.contentWidth > 0 { out.content += gotFloats[x..<x + data.contentWidth] }
            floatAt[o] += floatsPerRow
        }
        return out
    }
}

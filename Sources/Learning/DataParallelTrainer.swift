import Artifacts
import Collective
import Foundation
import Linalg

/// Trainer settings.
public struct TrainerConfig: Sendable, Equatable {
    /// Optimizer for the dense parameters and for embedding rows.
    public var dense: OptimizerKind = .adam
    public var sparse: OptimizerKind = .adam
    public var schedule = LearningRateSchedule(base: 1e-3)
    /// Embedding rows learn at schedule × this.
    public var sparseRateScale = 1.0
    /// Replica checksum every N steps (0 = never).
    public var checksumEvery = 50
    /// Dense exchange bucket in elements (one reduce-scatter and one allgatherv each). Smaller
    /// buckets start earlier during backward; larger ones cost fewer calls.
    public var bucketElements = 1 << 17
    /// Overlap the dense gradient exchange with backward (each bucket starts as soon as backward
    /// has finished all its gradients) and the sparse exchange with the dense update.
    public var overlapCommunication = true
    /// With `overlapCommunication`: leave the allgather of the updated dense values in flight
    /// when `step` returns, and finish each bucket when the next forward first reads it (layer by
    /// layer, through `ParameterStore`'s read fence), so the last buckets' transfers overlap the
    /// next forward instead of ending the step. Every read of the values outside the trainer
    /// waits too, so callers always see final values.
    public var gatherDuringForward = true
    /// Seed of the trainer's own stream (saved and restored with checkpoints).
    public var seed: UInt64 = 99

    public init() {}
}

/// Data-parallel training (the Horovod role) with a sharded optimizer (ZeRO stage 1): every
/// rank holds a replica of the model's values and processes its slice of each global batch.
///
/// Dense gradients are reduce-scattered in buckets (`DenseShardLayout`): each rank receives
/// the summed gradient of the parts it owns, updates only those with the optimizer state it
/// alone holds, and the new values are allgathered in place — an allreduce's traffic, with the
/// update's work and the optimizer state divided by the rank count. Embedding gradients go as
/// de-duplicated touched rows to the rows' owners (`RowShardLayout`, row % ranks), which update
/// them and send the new rows to every rank; no table is ever densified. Replicas stay
/// identical — checked by a checksum every `checksumEvery` steps (`ReplicaDivergenceError`
/// names the diverged rank). Results equal a one-rank run up to the order of float sums.
///
/// On 2+ ranks communication overlaps computation by default (`overlapsCommunication`, as
/// Horovod and PyTorch DDP do): the model reports each layer's gradient range as backward
/// finishes it (`lossAndGradients(_:normalizer:step:gradientsReady:)`), a bucket's non-blocking
/// reduce-scatter starts as soon as all of it is reported, transfers are driven between layers
/// (OpenMPI has no progress thread on shared memory), and a bucket whose sums have arrived is
/// updated and its allgather started while backward continues. Those allgathers are still in
/// flight when `step` returns (`gathersDuringForward`): the next forward waits for a bucket only
/// when a layer first reads it (`ParameterStore`'s read fence), and so does any other reader of
/// the values. Per-phase times: `computeSeconds`, `progressSeconds`, `communicationSeconds`
/// (including `forwardWaitSeconds`), `updateSeconds`.
public final class DataParallelTrainer<Model: TrainableModel> {
    public typealias T = Model.Scalar
    public let model: Model
    public let comm: Communicator
    public let config: TrainerConfig
    /// Optimizer of the dense parts this rank owns (`denseLayout.ownedRanges(rank:)`).
    public let denseOptimizer: Optimizer<T>
    /// Optimizers of the embedding rows this rank owns, one per table (`rowLayouts`).
    public let sparseOptimizers: [Optimizer<T>]
    /// How dense parameters are split over ranks for the update.
    public let denseLayout: DenseShardLayout
    /// How each table's rows are split over ranks for the update.
    public let rowLayouts: [RowShardLayout]
    private let ownedRanges: [Range<Int>]
    /// Summed gradients of the owned dense parts, back to back (bucket b's part at `shardOffsets[b]`).
    private let gradientShard: UnsafeMutableBufferPointer<T>
    private let shardOffsets: [Int]
    /// Per bucket in the current step: gradient elements backward has finished, and the started
    /// reduce-scatter.
    private var bucketReady: [Int]
    private var bucketRequests: [CollectiveRequest?]
    /// Per bucket in the current step: the started allgather of its updated values.
    private var gatherRequests: [CollectiveRequest?]
    /// Per bucket: the previous step's allgather still in flight (`gatherDuringForward`), finished
    /// by `valuesNeeded` when forward first reads the bucket, at the latest before this step's
    /// first update.
    private var gathersInFlight: [CollectiveRequest?]
    /// An error of a transfer finished inside the read fence (which cannot throw), thrown by the
    /// next trainer call.
    private var fenceFailure: (any Error)?
    /// Learning rate and optimizer step of the step in progress (overlapped mode).
    private var pendingStep = (lr: 0.0, t: 0)
    /// The step's loss, allreduced without blocking.
    private let lossBuffer = UnsafeMutableBufferPointer<Double>.allocate(capacity: 1)
    /// Overlap the exchange with backward (from `config.overlapCommunication`; benchmarks switch
    /// it between rounds for A/B comparisons). Results equal the blocking exchange up to the
    /// order of float sums.
    public var overlapsCommunication: Bool
    /// Leave the allgather of updated values in flight into the next forward (from
    /// `config.gatherDuringForward`; overlapped mode only). Results are bit-identical either way.
    public var gathersDuringForward: Bool
    /// Steps completed.
    public private(set) var step = 0
    /// The trainer's stream (advanced once per step; for shuffling and sampling by callers).
    public var rng: RandomStream
    /// Seconds spent in gradient communication (dense + sparse), cumulative.
    public private(set) var communicationSeconds = 0.0
    /// Seconds spent in forward + backward passes, cumulative.
    public private(set) var computeSeconds = 0.0
    /// Seconds spent in optimizer updates, cumulative.
    public private(set) var updateSeconds = 0.0
    /// Seconds spent inside backward starting and driving transfers (overlapped mode), cumulative.
    public private(set) var progressSeconds = 0.0
    /// Seconds forward waited for the previous step's updated values (`gathersDuringForward`),
    /// cumulative; also counted in `communicationSeconds`, not in `computeSeconds`.
    public private(set) var forwardWaitSeconds = 0.0
    /// Dense buckets exchanged, and those of them that were reduced, updated and had their
    /// allgather started before backward ended (hidden behind compute), cumulative (overlapped mode).
    public private(set) var bucketsExchanged = 0, bucketsHidden = 0

    /// Starts from the model's current parameters, made identical on every rank by a broadcast
    /// from rank 0.
    public init(model: Model, comm: Communicator, config: TrainerConfig = TrainerConfig()) throws {
        self.model = model
        self.comm = comm
        self.config = config
        denseLayout = DenseShardLayout(
            count: model.parameters.count, bucketElements: config.bucketElements, size: comm.size)
        ownedRanges = denseLayout.ownedRanges(rank: comm.rank)
        denseOptimizer = Optimizer(config.dense, count: denseLayout.ownedCount(rank: comm.rank))
        gradientShard = .allocate(capacity: Swift.max(1, comm.size > 1 ? denseOptimizer.count : 0))
        shardOffsets = exclusiveSum(denseLayout.buckets.map { $0.counts[comm.rank] })
        bucketReady = [Int](repeating: 0, count: denseLayout.buckets.count)
        bucketRequests = [CollectiveRequest?](repeating: nil, count: denseLayout.buckets.count)
        gatherRequests = [CollectiveRequest?](repeating: nil, count: denseLayout.buckets.count)
        gathersInFlight = gatherRequests
        overlapsCommunication = config.overlapCommunication
        gathersDuringForward = config.gatherDuringForward
        rowLayouts = model.tables.map { RowShardLayout(rows: $0.rows, size: comm.size) }
        sparseOptimizers = zip(model.tables, rowLayouts).map { table, layout in
            Optimizer(config.sparse, count: layout.ownedRows(rank: comm.rank) * table.dim)
        }
        rng = RandomStream(seed: config.seed)
        try comm.broadcast(model.parameters.values, root: 0)
        for table in model.tables { try comm.broadcast(&table.values, root: 0) }
    }

    /// One step on this rank's slice `localBatch` of a global batch of `globalBatchSize`
    /// examples. Collective. Returns the global mean loss of the batch (before the update).
    @discardableResult
    @_specialize(where Model == CrossMMoEModel<Float>)
    public func step(_ localBatch: Model.Batch, globalBatchSize: Int) throws -> Double {
        if comm.size > 1 && overlapsCommunication {
            return try overlappedStep(localBatch, globalBatchSize: globalBatchSize)
        }
        try finishGathersInFlight()
        let store = model.parameters
        let start = clock()
        store.zeroGrads()
        let (localLoss, sparse) = model.lossAndGradients(localBatch, normalizer: T(globalBatchSize), step: step + 1)
        let t0 = clock()
        computeSeconds += t0 - start
        try reduceScatterDenseGradients()
        let loss = try comm.allreduce(localLoss, op: .sum)
        let owned = try zip(sparse, rowLayouts).map { try SparseExchange.reduceToOwners($0, layout: $1, comm: comm) }
        let t1 = clock()
        communicationSeconds += t1 - t0
        step += 1
        _ = rng.next()
        let lr = config.schedule.rate(at: step)
        if comm.size == 1 {
            denseOptimizer.update(values: store.unfencedValues, grads: store.grads, lr: lr)
        } else {
            denseOptimizer.update(
                values: store.unfencedValues, ranges: ownedRanges, grads: gradientShard.baseAddress!, lr: lr)
        }
        updateOwnedRows(owned, lr: lr)
        let t2 = clock()
        updateSeconds += t2 - t1
        try allgatherDenseValues()
        for (i, table) in model.tables.enumerated() { try allgatherRows(owned[i].rows, of: table) }
        communicationSeconds += clock() - t2
        if config.checksumEvery > 0, step % config.checksumEvery == 0 { try verifyReplicas() }
        return loss
    }

    deinit {
        model.parameters.readFence = nil
        for request in bucketRequests + gatherRequests + gathersInFlight { try? request?.wait() }
        gradientShard.deallocate()
        lossBuffer.deallocate()
    }

    /// `step` with communication overlapped (2+ ranks), bucket by bucket: a bucket's gradient
    /// reduce-scatter starts as soon as backward has finished all its gradients; once its summed
    /// part has arrived, this rank updates that part and starts allgathering the new values —
    /// while backward goes on with earlier layers (transfers are driven between layers). The
    /// embedding rows travel to their owners while the last dense buckets are updated; each
    /// owner's count of rows to send back travels while it updates them, then the new rows go
    /// back to every rank. The dense values arrive during the next forward.
    @_specialize(where Model == CrossMMoEModel<Float>)
    private func overlappedStep(_ localBatch: Model.Batch, globalBatchSize: Int) throws -> Double {
        let store = model.parameters
        let start = clock()
        store.zeroGrads()
        for b in bucketReady.indices { (bucketReady[b], bucketRequests[b], gatherRequests[b]) = (0, nil, nil) }
        let forwardWait0 = forwardWaitSeconds
        pendingStep = (lr: config.schedule.rate(at: step + 1), t: denseOptimizer.t + 1)
        var failure: (any Error)?
        var progress = 0.0, updating = 0.0
        let (localLoss, sparse) = model.lossAndGradients(
            localBatch, normalizer: T(globalBatchSize), step: step + 1
        ) { range in
            guard failure == nil else { return }
            let p0 = clock()
            do { updating += try gradientsReady(range) } catch { failure = error }
            progress += clock() - p0
        }
        if let failure { throw failure }
        try finishGathersInFlight()  // a model whose forward did not read every parameter
        let t0 = clock()
        let forwardWait = forwardWaitSeconds - forwardWait0
        communicationSeconds += forwardWait
        computeSeconds += t0 - start - progress - forwardWait
        progressSeconds += progress - updating
        updateSeconds += updating
        bucketsHidden += gatherRequests.filter { $0 != nil }.count
        bucketsExchanged += bucketRequests.count
        // Buckets the model did not report start now, in bucket order (the same on every rank).
        for b in bucketRequests.indices where bucketRequests[b] == nil { try startBucket(b) }
        lossBuffer[0] = localLoss
        let lossRequest = try comm.startAllreduce(lossBuffer)
        let pending = try zip(sparse, rowLayouts).map {
            try SparseExchange.startReduceToOwners($0, layout: $1, comm: comm)
        }
        var waiting = clock() - t0
        for b in bucketRequests.indices where gatherRequests[b] == nil {
            let w0 = clock()
            try bucketRequests[b]!.wait()
            waiting += clock() - w0
            updateSeconds += try updateAndGather(b)
        }
        step += 1
        _ = rng.next()
        denseOptimizer.t = pendingStep.t
        let lr = pendingStep.lr
        let t2 = clock()
        let owned = try pending.map { try $0.finish() }
        // Every rank's count of updated rows travels while the rows are updated.
        let rowCounts = try owned.map { try SparseExchange.startRowCounts($0.rows.count, comm: comm) }
        let t3 = clock()
        communicationSeconds += waiting + (t3 - t2)
        updateOwnedRows(owned, lr: lr)
        let t4 = clock()
        updateSeconds += t4 - t3
        let rowGathers = try model.tables.enumerated().map { i, table in
            try SparseExchange.startAllgatherRows(
                owned[i].rows, of: table.values, dim: table.dim, counts: rowCounts[i], comm: comm)
        }
        for (i, table) in model.tables.enumerated() { try rowGathers[i].finish(into: &table.values) }
        if gathersDuringForward {
            // Left in flight: the next forward waits bucket by bucket (`valuesNeeded`), and so
            // does any other reader of the values (e.g. the replica check below).
            try lossRequest.wait()
            for b in gatherRequests.indices { (gathersInFlight[b], gatherRequests[b]) = (gatherRequests[b], nil) }
            model.parameters.readFence = { [unowned self] in self.valuesNeeded($0) }
        } else {
            try CollectiveRequest.waitAll(gatherRequests.map { $0! } + [lossRequest])
        }
        communicationSeconds += clock() - t4
        if config.checksumEvery > 0, step % config.checksumEvery == 0 { try verifyReplicas() }
        return lossBuffer[0]
    }

    /// Backward has finished the dense gradients in `range` (and no longer reads their values):
    /// starts every bucket that is now complete, drives the transfers in flight, and updates and
    /// starts gathering every bucket whose summed gradients have arrived. Returns the seconds
    /// spent updating.
    private func gradientsReady(_ range: Range<Int>) throws -> Double {
        guard !range.isEmpty else { return 0 }
        try finishGathersInFlight()  // updates write the values the previous gathers still send
        precondition(
            range.lowerBound >= 0 && range.upperBound <= denseLayout.count,
            "gradientsReady: \(range) outside the \(denseLayout.count) parameters")
        let width = config.bucketElements
        for b in range.lowerBound / width...(range.upperBound - 1) / width {
            let bucket = denseLayout.buckets[b]
            let covered =
                Swift.min(range.upperBound, bucket.start + bucket.count) - Swift.max(range.lowerBound, bucket.start)
            bucketReady[b] += covered
            precondition(bucketReady[b] <= bucket.count, "gradientsReady: gradients of bucket \(b) reported twice")
            if bucketReady[b] == bucket.count { try startBucket(b) }
        }
        var updating = 0.0
        for b in bucketRequests.indices {
            if let gather = gatherRequests[b] {
                try gather.test()
            } else if let request = bucketRequests[b], try request.test() {
                updating += try updateAndGather(b)
            }
        }
        return updating
    }

    /// Forward is about to read the values in `range` (`ParameterStore.readFence`): waits for the
    /// previous step's gathers of the buckets that cover it and drives the others; removes the
    /// fence once all have arrived. Errors are kept for the next trainer call (`fenceFailure`).
    private func valuesNeeded(_ range: Range<Int>) {
        guard !range.isEmpty else { return }
        let w0 = clock()
        let width = config.bucketElements
        do {
            for b in range.lowerBound / width...(range.upperBound - 1) / width {
                try gathersInFlight[b]?.wait()
                gathersInFlight[b] = nil
            }
            for b in gathersInFlight.indices where try gathersInFlight[b]?.test() == true { gathersInFlight[b] = nil }
        } catch {
            fenceFailure = fenceFailure ?? error
            for b in gathersInFlight.indices { gathersInFlight[b] = nil }  // each waits in its deinit
        }
        if gathersInFlight.allSatisfy({ $0 == nil }) { model.parameters.readFence = nil }
        forwardWaitSeconds += clock() - w0
    }

    /// Finishes every gather left in flight by the previous step and throws a transfer error
    /// the read fence kept. Called before anything writes or reads all the values.
    private func finishGathersInFlight() throws {
        if model.parameters.readFence != nil {
            model.parameters.readFence = nil
            let pending = gathersInFlight.compactMap { $0 }
            for b in gathersInFlight.indices { gathersInFlight[b] = nil }
            try CollectiveRequest.waitAll(pending)
        }
        if let failure = fenceFailure {
            fenceFailure = nil
            throw failure
        }
    }

    /// Bucket `b`'s summed gradients have arrived: updates this rank's part of it and starts the
    /// allgather of the bucket's new values. Returns the seconds spent updating.
    private func updateAndGather(_ b: Int) throws -> Double {
        let bucket = denseLayout.buckets[b]
        let u0 = clock()
        let mine = bucket.counts[comm.rank]
        if mine > 0 {
            denseOptimizer.update(
                values: model.parameters.unfencedValues.baseAddress! + bucket.start
                    + bucket.counts[..<comm.rank].reduce(0, +),
                grads: gradientShard.baseAddress! + shardOffsets[b], count: mine, stateOffset: shardOffsets[b],
                lr: pendingStep.lr, step: pendingStep.t)
        }
        let updating = clock() - u0
        let values = model.parameters.unfencedValues
        // Ranks update buckets as their transfers complete, so in different orders: a tag per bucket.
        gatherRequests[b] = try comm.startAllgatherv(
            inPlace: UnsafeMutableBufferPointer(rebasing: values[bucket.start..<bucket.start + bucket.count]),
            counts: bucket.counts, tag: b % (Communicator.nonblockingTagLimit - 1))
        return updating
    }

    /// Starts the reduce-scatter of bucket `b` into this rank's part of `gradientShard`.
    private func startBucket(_ b: Int) throws {
        let bucket = denseLayout.buckets[b]
        let grads = model.parameters.grads
        bucketRequests[b] = try comm.startReduceScatter(
            UnsafeBufferPointer(rebasing: grads[bucket.start..<bucket.start + bucket.count]),
            into: UnsafeMutableBufferPointer(
                rebasing: gradientShard[shardOffsets[b]..<shardOffsets[b] + bucket.counts[comm.rank]]),
            counts: bucket.counts, tag: b % (Communicator.nonblockingTagLimit - 1))
    }

    /// Sparse update of the embedding rows this rank owns (their summed gradients in `owned`,
    /// one per table), with the optimizer state kept at the row's local slot.
    private func updateOwnedRows(_ owned: [SparseRows<Model.Scalar>], lr: Double) {
        for (i, table) in model.tables.enumerated() {
            let layout = rowLayouts[i]
            sparseOptimizers[i].updateRows(
                table: &table.values, gradient: owned[i], lr: lr * config.sparseRateScale, step: step,
                stateRow: { layout.localRow(of: $0) })
        }
    }

    /// Checks that every rank holds the same parameters, tables and optimizer step; throws
    /// `ReplicaDivergenceError` naming the ranks that differ from rank 0. Collective.
    public func verifyReplicas() throws {
        try finishGathersInFlight()
        var sum = ReplicaCheck.checksum(UnsafeBufferPointer(model.parameters.values))
        for table in model.tables { sum += table.values.withUnsafeBufferPointer { ReplicaCheck.checksum($0) } }
        try ReplicaCheck.verify(checksum: sum, step: step, comm: comm)
    }

    /// Each rank receives the summed gradients of its dense parts in `gradientShard`.
    private func reduceScatterDenseGradients() throws {
        guard comm.size > 1 else { return }
        let grads = model.parameters.grads
        for (b, bucket) in denseLayout.buckets.enumerated() {
            let mine = bucket.counts[comm.rank]
            try comm.reduceScatter(
                UnsafeBufferPointer(rebasing: grads[bucket.start..<bucket.start + bucket.count]),
                into: UnsafeMutableBufferPointer(rebasing: gradientShard[shardOffsets[b]..<shardOffsets[b] + mine]),
                counts: bucket.counts)
        }
    }

    /// Every rank receives the updated values of every rank's dense parts.
    private func allgatherDenseValues() throws {
        guard comm.size > 1 else { return }
        let values = model.parameters.unfencedValues
        for bucket in denseLayout.buckets {
            try comm.allgatherv(
                inPlace: UnsafeMutableBufferPointer(rebasing: values[bucket.start..<bucket.start + bucket.count]),
                counts: bucket.counts)
        }
    }

    /// Every rank receives the new values of the rows other ranks updated (`rows` are the rows
    /// this rank owns and updated).
    private func allgatherRows(_ rows: [Int64], of table: EmbeddingTable<T>) throws {
        guard comm.size > 1 else { return }
        let dim = table.dim
        var mine = [T](repeating: 0, count: rows.count * dim)
        table.values.withUnsafeBufferPointer { v in
            mine.withUnsafeMutableBufferPointer { out in
                for (i, row) in rows.enumerated() {
                    (out.baseAddress! + i * dim).update(from: v.baseAddress! + Int(row) * dim, count: dim)
                }
            }
        }
        let (allRows, counts) = try comm.allgatherv(rows)
        let (allValues, _) = try comm.allgatherv(mine)
        let first = exclusiveSum(counts)[comm.rank]
        let skip = first..<first + counts[comm.rank]  // this rank's own rows, already in place
        table.values.withUnsafeMutableBufferPointer { v in
            allValues.withUnsafeBufferPointer { src in
                for (i, row) in allRows.enumerated() where !skip.contains(i) {
                    (v.baseAddress! + Int(row) * dim).update(from: src.baseAddress! + i * dim, count: dim)
                }
            }
        }
    }

    private func clock() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    // MARK: - Checkpoints

    static var format: String { "mosaic-learning-checkpoint-v1" }

    /// Writes parameters, tables, optimizer state, step and RNG state to the HDF5 file `path`
    /// (rank 0 writes `path.tmp`, then renames it, so a crash never leaves a half-written
    /// checkpoint under `path`). The sharded optimizer state is gathered on rank 0 and written in
    /// the parameters' own order, so the file does not depend on the rank count and loads on any
    /// number of ranks. Collective.
    public func saveCheckpoint(to path: String, calibrators: [String: Calibrator] = [:]) throws {
        try verifyReplicas()
        let denseSlots = try denseOptimizer.state.map { try gatherDenseState($0) }
        let tableSlots = try model.tables.indices.map { i in
            try sparseOptimizers[i].state.map {
                try gatherRowState($0, layout: rowLayouts[i], dim: model.tables[i].dim)
            }
        }
        if comm.isRoot {
            let tmp = path + ".tmp"
            do {
                let file = try H5File(path: tmp, mode: .create)
                let root = file.root
                try root.setAttribute("format", Self.format)
                try root.setAttribute("step", Int64(step))
                try root.setAttribute("ranks", Int64(comm.size))
                try root.setAttribute("layout", model.parameters.layout)
                try root.setAttribute("dense_optimizer", config.dense.name)
                try root.setAttribute("sparse_optimizer", config.sparse.name)
                try root.setAttribute("rng_state", values: rng.state.map { Int64(bitPattern: $0) })
                try root.write("parameters", model.parameters.valuesArray())
                let opt = try root.createGroup("dense_optimizer")
                try opt.setAttribute("t", Int64(denseOptimizer.t))
                for (s, slot) in denseSlots.enumerated() { try opt.write("slot\(s)", slot) }
                let tables = try root.createGroup("tables")
                for (i, table) in model.tables.enumerated() {
                    let g = try tables.createGroup(table.name)
                    try g.write("values", table.values, shape: [table.rows, table.dim])
                    try g.setAttribute("t", Int64(sparseOptimizers[i].t))
                    for (s, slot) in tableSlots[i].enumerated() {
                        try g.write("optimizer_slot\(s)", slot, shape: [table.rows, table.dim])
                    }
                }
                if !calibrators.isEmpty {
                    let group = try root.createGroup("calibration")
                    for (name, calibrator) in calibrators.sorted(by: { $0.key < $1.key }) {
                        try calibrator.save(to: try group.createGroup(name))
                    }
                }
                try file.flush()
            }
            if rename(tmp, path) != 0 {
                throw ArtifactError(file: path, message: "cannot rename \(tmp) to \(path): errno \(errno)")
            }
        }
        try comm.barrier()
    }

    /// One dense optimizer slot in parameter order on rank 0 (empty elsewhere). Collective.
    private func gatherDenseState(_ part: [T]) throws -> [T] {
        if comm.size == 1 { return part }
        let (gathered, _) = try comm.gatherv(part, root: 0)
        guard comm.isRoot else { return [] }
        var full = [T](repeating: 0, count: denseLayout.count)
        var offset = 0
        for r in 0..<comm.size {
            for range in denseLayout.ownedRanges(rank: r) {
                full.replaceSubrange(range, with: gathered[offset..<offset + range.count])
                offset += range.count
            }
        }
        return full
    }

    /// One table optimizer slot (rows × dim, row order) on rank 0 (empty elsewhere). Collective.
    private func gatherRowState(_ part: [T], layout: RowShardLayout, dim: Int) throws -> [T] {
        if comm.size == 1 { return part }
        let (gathered, counts) = try comm.gatherv(part, root: 0)
        guard comm.isRoot else { return [] }
        var full = [T](repeating: 0, count: layout.rows * dim)
        let starts = exclusiveSum(counts)
        for r in 0..<comm.size {
            for local in 0..<layout.ownedRows(rank: r) {
                let row = local * layout.size + r, src = starts[r] + local * dim
                full.replaceSubrange(row * dim..<(row + 1) * dim, with: gathered[src..<src + dim])
            }
        }
        return full
    }

    /// The calibrators saved with a checkpoint (by name, e.g. one per task); empty when none.
    public static func calibrators(in path: String) throws -> [String: Calibrator] {
        try Calibrator.saved(in: path)
    }

    /// Restores everything `saveCheckpoint` wrote, on any rank count. Every rank reads the file.
    /// Throws `ArtifactError` naming the file and object when it does not match this model.
    public func loadCheckpoint(from path: String) throws {
        try finishGathersInFlight()  // they would overwrite the loaded values
        let file = try H5File(path: path, mode: .read)
        let root = file.root
        guard try root.stringAttribute("format") == Self.format else {
            throw ArtifactError(file: path, object: "/", message: "not a \(Self.format) checkpoint")
        }
        let layout = try root.stringAttribute("layout")
        guard layout == model.parameters.layout else {
            throw ArtifactError(
                file: path, object: "/parameters",
                message: "parameter layout differs from the model's (different architecture?)")
        }
        for (name, kind) in [("dense_optimizer", config.dense), ("sparse_optimizer", config.sparse)] {
            let saved = try root.stringAttribute(name)
            guard saved == kind.name else {
                throw ArtifactError(file: path, object: "/", message: "\(name) is \(saved), this run uses \(kind.name)")
            }
        }
        model.parameters.setValues(try root.read("parameters", as: T.self))
        let opt = try root.group("dense_optimizer")
        denseOptimizer.t = Int(try opt.intAttribute("t"))
        for s in denseOptimizer.state.indices {
            let slot = try opt.read("slot\(s)", as: T.self)
            guard slot.count == model.parameters.count else {
                throw ArtifactError(
                    file: path, object: "/dense_optimizer/slot\(s)",
                    message: "\(slot.count) values, expected \(model.parameters.count)")
            }
            denseOptimizer.state[s] = ownedRanges.flatMap { slot[$0] }
        }
        let tables = try root.group("tables")
        for (i, table) in model.tables.enumerated() {
            let g = try tables.group(table.name)
            let values = try g.read("values", as: T.self)
            guard values.count == table.values.count else {
                throw ArtifactError(
                    file: path, object: "/tables/\(table.name)/values",
                    message: "\(values.count) values, expected \(table.rows)×\(table.dim)")
            }
            table.values = values
            sparseOptimizers[i].t = Int(try g.intAttribute("t"))
            for s in sparseOptimizers[i].state.indices {
                let slot = try g.read("optimizer_slot\(s)", as: T.self)
                guard slot.count == table.values.count else {
                    throw ArtifactError(
                        file: path, object: "/tables/\(table.name)/optimizer_slot\(s)",
                        message: "\(slot.count) values, expected \(table.rows)×\(table.dim)")
                }
                let layout = rowLayouts[i], dim = table.dim
                var mine = [T](repeating: 0, count: layout.ownedRows(rank: comm.rank) * dim)
                for local in 0..<layout.ownedRows(rank: comm.rank) {
                    let row = local * layout.size + comm.rank
                    mine.replaceSubrange(local * dim..<(local + 1) * dim, with: slot[row * dim..<(row + 1) * dim])
                }
                sparseOptimizers[i].state[s] = mine
            }
        }
        step = Int(try root.intAttribute("step"))
        rng = RandomStream(state: try root.numericAttribute("rng_state", as: Int64.self).map { UInt64(bitPattern: $0) })
        try verifyReplicas()
    }
}

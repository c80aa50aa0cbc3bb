import Collective

/// Exchange of sparse embedding gradients between ranks without densifying the table: every
/// rank de-duplicates its touched rows, then all ranks allgatherv (row ids, row gradients) and
/// merge duplicates in rank order, so every rank ends with the same rows and sums.
///
/// Traffic: Σ_ranks touched rows × (dim + 2) scalars, independent of the table size.
public enum SparseExchange {
    @_specialize(where T == Float)
    public static func allgatherSum<T: Real>(_ local: SparseRows<T>, comm: Communicator) throws -> SparseRows<T> {
        let mine = local.deduplicated()
        if comm.size == 1 { return mine }
        let (rows, _) = try comm.allgatherv(mine.rows)
        let (grads, _) = try comm.allgatherv(mine.grads)
        return SparseRows(dim: local.dim, rows: rows, grads: grads).deduplicated()
    }
}

/// A started `SparseExchange.startReduceToOwners`: the rows and gradients are on their way to
/// their owners; `finish()` waits for them and returns what `reduceToOwners` would.
public final class PendingOwnerRows<T: Real> {
    public let dim: Int
    private let sendRows: UnsafeMutableBufferPointer<Int64>, sendGrads: UnsafeMutableBufferPointer<T>
    private let receivedRows: UnsafeMutableBufferPointer<Int64>, receivedGrads: UnsafeMutableBufferPointer<T>
    private var requests: [CollectiveRequest] = []
    private var local: SparseRows<T>?

    init(dim: Int, sendCount: Int, receiveCount: Int) {
        self.dim = dim
        sendRows = .allocate(capacity: Swift.max(sendCount, 1))
        sendGrads = .allocate(capacity: Swift.max(sendCount * dim, 1))
        receivedRows = .allocate(capacity: Swift.max(receiveCount, 1))
        receivedGrads = .allocate(capacity: Swift.max(receiveCount * dim, 1))
        (rowsOut, gradsOut, rowsIn, gradsIn) = (sendCount, sendCount * dim, receiveCount, receiveCount * dim)
    }
    private let rowsOut: Int, gradsOut: Int, rowsIn: Int, gradsIn: Int

    /// The one-rank case: nothing to send.
    init(local: SparseRows<T>) {
        dim = local.dim
        self.local = local
        (sendRows, sendGrads, receivedRows, receivedGrads) = (.allocate(capacity: 1), .allocate(capacity: 1), .allocate(capacity: 1), .allocate(capacity: 1))
        (rowsOut, gradsOut, rowsIn, gradsIn) = (0, 0, 0, 0)
    }

    fileprivate func start(comm: Communicator, sendCounts: [Int], receiveCounts: [Int]) throws {
        requests.append(
            try comm.startAlltoallv(
                UnsafeBufferPointer(rebasing: sendRows[..<rowsOut]), sendCounts: sendCounts,
                into: UnsafeMutableBufferPointer(rebasing: receivedRows[..<rowsIn]), receiveCounts: receiveCounts))
        requests.append(
            try comm.startAlltoallv(
                UnsafeBufferPointer(rebasing: sendGrads[..<gradsOut]), sendCounts: sendCounts.map { $0 * dim },
                into: UnsafeMutableBufferPointer(rebasing: receivedGrads[..<gradsIn]),
                receiveCounts: receiveCounts.map { $0 * dim }))
    }

    fileprivate var sendBuffers: (rows: UnsafeMutableBufferPointer<Int64>, grads: UnsafeMutableBufferPointer<T>) {
        (sendRows, sendGrads)
    }

    /// Drives the transfer; true when it has arrived.
    @discardableResult
    public func test() throws -> Bool { try CollectiveRequest.testAll(requests) }

    /// The rows this rank owns with their gradients summed over ranks in rank order. Call once.
    public func finish() throws -> SparseRows<T> {
        if let local { return local }
        try CollectiveRequest.waitAll(requests)
        return SparseRows(
            dim: dim, rows: Array(receivedRows[..<rowsIn]), grads: Array(receivedGrads[..<gradsIn])
        ).deduplicated()
    }

    deinit {
        try? CollectiveRequest.waitAll(requests)  // MPI must be done with the buffers first
        requests = []
        for b in [sendRows, receivedRows] { b.deallocate() }
        for b in [sendGrads, receivedGrads] { b.deallocate() }
    }
}

extension SparseExchange {
    /// Starts `reduceToOwners`: de-duplicates and sorts the rows by owner, exchanges the per-owner
    /// counts (a small blocking alltoall), and starts sending rows and gradients to their owners
    /// (non-blocking). The result equals `reduceToOwners`. Collective.
    @_specialize(where T == Float)
    public static func startReduceToOwners<T: Real>(
        _ local: SparseRows<T>, layout: RowShardLayout, comm: Communicator
    ) throws -> PendingOwnerRows<T> {
        let mine = local.deduplicated()
        if comm.size == 1 { return PendingOwnerRows(local: mine) }
        let dim = local.dim
        var perOwner = [Int](repeating: 0, count: comm.size)
        for row in mine.rows { perOwner[layout.owner(of: row)] += 1 }
        let receiveCounts = try comm.alltoall(perOwner)
        let pending = PendingOwnerRows<T>(
            dim: dim, sendCount: mine.rows.count, receiveCount: receiveCounts.reduce(0, +))
        // Counting sort by owner keeps each owner's rows ascending.
        var next = exclusiveSum(perOwner)
        let (rows, grads) = pending.sendBuffers
        mine.grads.withUnsafeBufferPointer { src in
            for (i, row) in mine.rows.enumerated() {
                let o = layout.owner(of: row)
                let slot = next[o]
                next[o] += 1
                rows[slot] = row
                (grads.baseAddress! + slot * dim).update(from: src.baseAddress! + i * dim, count: dim)
            }
        }
        try pending.start(comm: comm, sendCounts: perOwner, receiveCounts: receiveCounts)
        return pending
    }
}

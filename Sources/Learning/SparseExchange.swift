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
        (sendRows, sendGrads, receivedRows, receivedGrads) = (
            .allocate(capacity: 1), .allocate(capacity: 1), .allocate(capacity: 1), .allocate(capacity: 1)
        )
        (rowsOut, gradsOut, rowsIn, gradsIn) = (0, 0, 0, 0)
    }

    /// Rows received from each rank (each sender's rows are unique and ascending).
    private var senderCounts: [Int] = []

    fileprivate func start(comm: Communicator, sendCounts: [Int], receiveCounts: [Int]) throws {
        senderCounts = receiveCounts
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
        // Merged per sender in rank order (the sums of `deduplicated()`, without its sort).
        return SparseRows(
            dim: dim, rows: Array(receivedRows[..<rowsIn]), grads: Array(receivedGrads[..<gradsIn])
        ).mergingSortedRuns(senderCounts)
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
        // Counts by one point-to-point round (a blocking alltoall would be two collectives).
        var receiveCounts = [Int](repeating: 0, count: comm.size)
        let ones = [Int](repeating: 1, count: comm.size)
        try perOwner.withUnsafeBufferPointer { send in
            try receiveCounts.withUnsafeMutableBufferPointer {
                try comm.startAlltoallv(send, sendCounts: ones, into: $0, receiveCounts: ones).wait()
            }
        }
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

/// The tag of the row allgathers (the trainer tags its dense buckets below it).
private let rowTag = Communicator.nonblockingTagLimit - 1

/// A started allgather of updated embedding rows (`SparseExchange.startAllgatherRows`):
/// `finish()` waits and writes the other ranks' rows into the table.
public final class PendingRowGather<T: Real> {
    private let dim: Int, rank: Int
    private let counts: [Int]
    private let rows: UnsafeMutableBufferPointer<Int64>, values: UnsafeMutableBufferPointer<T>
    private var requests: [CollectiveRequest] = []

    fileprivate init(dim: Int, rank: Int, counts: [Int]) {
        self.dim = dim
        self.rank = rank
        self.counts = counts
        let total = counts.reduce(0, +)
        rows = .allocate(capacity: Swift.max(total, 1))
        values = .allocate(capacity: Swift.max(total * dim, 1))
    }

    fileprivate func start(comm: Communicator, mine: [Int64], table: [T]) throws {
        let total = counts.reduce(0, +)
        let first = exclusiveSum(counts)[rank]
        table.withUnsafeBufferPointer { v in
            for (i, row) in mine.enumerated() {
                rows[first + i] = row
                (values.baseAddress! + (first + i) * dim).update(from: v.baseAddress! + Int(row) * dim, count: dim)
            }
        }
        let rowBuffer = UnsafeMutableBufferPointer<Int64>(start: rows.baseAddress, count: total)
        let valueBuffer = UnsafeMutableBufferPointer<T>(start: values.baseAddress, count: total * dim)
        let valueCounts: [Int] = counts.map { $0 * dim }
        let rowRequest: CollectiveRequest = try comm.startAllgatherv(inPlace: rowBuffer, counts: counts, tag: rowTag)
        requests.append(rowRequest)
        let valueRequest: CollectiveRequest = try comm.startAllgatherv(
            inPlace: valueBuffer, counts: valueCounts, tag: rowTag)
        requests.append(valueRequest)
    }

    /// Waits for every rank's rows and writes them into `table` (this rank's rows are already there).
    public func finish(into table: inout [T]) throws {
        try CollectiveRequest.waitAll(requests)
        let first = exclusiveSum(counts)[rank]
        let skip = first..<first + counts[rank]
        let total = counts.reduce(0, +)
        table.withUnsafeMutableBufferPointer { v in
            for i in 0..<total where !skip.contains(i) {
                (v.baseAddress! + Int(rows[i]) * dim).update(from: values.baseAddress! + i * dim, count: dim)
            }
        }
    }

    deinit {
        try? CollectiveRequest.waitAll(requests)
        requests = []
        rows.deallocate()
        values.deallocate()
    }
}

/// A started exchange of how many rows every rank will send in its row allgather
/// (`SparseExchange.startRowCounts`): started as soon as an owner knows its rows, so that the
/// round trip overlaps the rows' update instead of waiting for the other ranks afterwards.
public final class PendingRowCounts {
    private let counts: UnsafeMutableBufferPointer<Int>
    private let request: CollectiveRequest

    fileprivate init(_ count: Int, comm: Communicator) throws {
        counts = .allocate(capacity: comm.size)
        counts.initialize(repeating: 0)
        counts[comm.rank] = count
        do {
            request = try comm.startAllgatherv(
                inPlace: counts, counts: [Int](repeating: 1, count: comm.size), tag: rowTag)
        } catch {
            counts.deallocate()
            throw error
        }
    }

    /// Rows of every rank, in rank order (waits for them).
    fileprivate func finish() throws -> [Int] {
        try request.wait()
        return Array(counts)
    }

    deinit {
        try? request.wait()  // MPI must be done with the buffer first
        counts.deallocate()
    }
}

extension SparseExchange {
    /// Starts telling every rank that this rank will send `count` rows in the next
    /// `startAllgatherRows` (started in the same order on every rank). Collective; 2+ ranks.
    public static func startRowCounts(_ count: Int, comm: Communicator) throws -> PendingRowCounts {
        try PendingRowCounts(count, comm: comm)
    }

    /// Starts sending the new values of `rows` (rows this rank owns and updated in `table`,
    /// rows × dim) to every rank without blocking, once every rank's count (`counts`, from
    /// `startRowCounts(rows.count)`) has arrived. Collective; 2+ ranks.
    @_specialize(where T == Float)
    public static func startAllgatherRows<T: Real>(
        _ rows: [Int64], of table: [T], dim: Int, counts: PendingRowCounts, comm: Communicator
    ) throws -> PendingRowGather<T> {
        let counts = try counts.finish()
        precondition(
            counts[comm.rank] == rows.count, "startAllgatherRows: \(rows.count) rows, announced \(counts[comm.rank])")
        let pending = PendingRowGather<T>(dim: dim, rank: comm.rank, counts: counts)
        try pending.start(comm: comm, mine: rows, table: table)
        return pending
    }

    /// `startRowCounts` and `startAllgatherRows` at once (the counts round then blocks).
    @_specialize(where T == Float)
    public static func startAllgatherRows<T: Real>(
        _ rows: [Int64], of table: [T], dim: Int, comm: Communicator
    ) throws -> PendingRowGather<T> {
        try startAllgatherRows(rows, of: table, dim: dim, counts: startRowCounts(rows.count, comm: comm), comm: comm)
    }
}

import Collective

/// How the dense parameter buffer is split over ranks for the sharded optimizer update (ZeRO
/// stage 1): the buffer is cut into buckets of at most `bucketElements` (one collective each),
/// and every bucket into `size` consecutive parts; rank r owns part r of every bucket, holds
/// the optimizer state of those elements only, and updates only them.
///
/// A step is then reduce-scatter of the gradients (each rank gets the summed gradient of its
/// parts), the update of the owned parts, and an in-place allgatherv of the new values: the same
/// bytes on the wire as an allreduce, with the update's work and the optimizer state divided by
/// the rank count. The layout depends only on (count, bucketElements, size), so any rank can
/// compute any other rank's parts (used to gather and scatter checkpoint state).
public struct DenseShardLayout: Sendable, Equatable {
    /// One bucket: `start..<start + counts.sum` of the buffer, part r has `counts[r]` elements.
    public struct Bucket: Sendable, Equatable {
        public let start: Int
        public let counts: [Int]
        public var count: Int { counts.reduce(0, +) }
    }

    public let count: Int
    public let size: Int
    public let buckets: [Bucket]

    /// Buckets of `bucketElements` (the last one shorter), each split over `size` ranks into parts
    /// that differ by at most one element.
    public init(count: Int, bucketElements: Int, size: Int) {
        precondition(count >= 0 && bucketElements > 0 && size > 0, "DenseShardLayout: bad sizes")
        self.count = count
        self.size = size
        var buckets: [Bucket] = []
        var start = 0
        while start < count {
            let n = Swift.min(bucketElements, count - start)
            let counts = (0..<size).map { n / size + ($0 < n % size ? 1 : 0) }
            buckets.append(Bucket(start: start, counts: counts))
            start += n
        }
        self.buckets = buckets
    }

    /// The buffer ranges rank `rank` owns, in buffer order; their lengths sum to `ownedCount`.
    public func ownedRanges(rank: Int) -> [Range<Int>] {
        buckets.compactMap { b in
            let offset = b.start + b.counts[..<rank].reduce(0, +)
            return b.counts[rank] > 0 ? offset..<offset + b.counts[rank] : nil
        }
    }

    /// Elements rank `rank` owns (the length of its optimizer state).
    public func ownedCount(rank: Int) -> Int { buckets.reduce(0) { $0 + $1.counts[rank] } }
}

/// How embedding-table rows are split over ranks for the sharded sparse update: row `r` belongs
/// to rank `r % size`, which keeps that row's optimizer state at local row `r / size`. Values
/// stay replicated (every rank looks rows up); only the owner updates a row and then sends the
/// new values to all ranks.
public struct RowShardLayout: Sendable, Equatable {
    public let rows: Int
    public let size: Int

    public init(rows: Int, size: Int) {
        precondition(rows >= 0 && size > 0, "RowShardLayout: bad sizes")
        self.rows = rows
        self.size = size
    }

    @inline(__always) public func owner(of row: Int64) -> Int { Int(row % Int64(size)) }
    @inline(__always) public func localRow(of row: Int64) -> Int { Int(row / Int64(size)) }
    /// Rows rank `rank` owns: ⌈(rows − rank) / size⌉.
    public func ownedRows(rank: Int) -> Int { rank < rows ? (rows - rank + size - 1) / size : 0 }
}

extension SparseExchange {
    /// Sends every de-duplicated touched row to its owner (`layout.owner(of:)`); returns the
    /// rows this rank owns with their gradients summed over ranks in rank order (the same sums
    /// as `allgatherSum` restricted to this rank's rows). Collective.
    ///
    /// Traffic: each rank receives only the rows it owns, (dim + 2) scalars per row and sender.
    @_specialize(where T == Float)
    public static func reduceToOwners<T: Real>(
        _ local: SparseRows<T>, layout: RowShardLayout, comm: Communicator
    ) throws -> SparseRows<T> {
        let mine = local.deduplicated()
        if comm.size == 1 { return mine }
        let dim = local.dim
        // Counting sort by owner keeps each owner's rows ascending.
        var perOwner = [Int](repeating: 0, count: comm.size)
        for row in mine.rows { perOwner[layout.owner(of: row)] += 1 }
        var next = exclusiveSum(perOwner)
        var rows = [Int64](repeating: 0, count: mine.rows.count)
        var grads = [T](repeating: 0, count: mine.grads.count)
        mine.grads.withUnsafeBufferPointer { src in
            grads.withUnsafeMutableBufferPointer { dst in
                for (i, row) in mine.rows.enumerated() {
                    let o = layout.owner(of: row)
                    let slot = next[o]
                    next[o] += 1
                    rows[slot] = row
                    (dst.baseAddress! + slot * dim).update(from: src.baseAddress! + i * dim, count: dim)
                }
            }
        }
        let (receivedRows, senders) = try comm.alltoallv(rows, sendCounts: perOwner)
        let (receivedGrads, _) = try comm.alltoallv(grads, sendCounts: perOwner.map { $0 * dim })
        // Every sender's rows arrive unique and ascending: merge them instead of sorting.
        return SparseRows(dim: dim, rows: receivedRows, grads: receivedGrads).mergingSortedRuns(senders)
    }
}

import Collective

/// Fused gradient reduction (the role of Horovod's tensor fusion): the model's gradients are
/// one contiguous buffer, reduced in buckets of `bucketElements` (one MPI call each), summed
/// over ranks in place.
public struct GradientFusion: Sendable {
    /// Elements per allreduce call (default 1 Mi elements = 4 MiB of Float).
    public var bucketElements: Int

    public init(bucketElements: Int = 1 << 20) {
        precondition(bucketElements > 0, "GradientFusion: bucket size must be positive")
        self.bucketElements = bucketElements
    }

    /// Sums `buffer` over all ranks, in place.
    @_specialize(where T == Float)
    public func allreduceSum<T: Real>(_ buffer: UnsafeMutableBufferPointer<T>, comm: Communicator) throws {
        if comm.size == 1 { return }
        var offset = 0
        while offset < buffer.count {
            let n = Swift.min(bucketElements, buffer.count - offset)
            try comm.allreduce(UnsafeMutableBufferPointer(rebasing: buffer[offset..<offset + n]), op: .sum)
            offset += n
        }
    }
}

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

/// Raised when the ranks' parameter replicas differ.
public struct ReplicaDivergenceError: Error, CustomStringConvertible, Sendable {
    /// Step at which the check ran.
    public let step: Int
    /// Ranks whose checksum differs from rank 0's.
    public let ranks: [Int]
    /// Every rank's checksum.
    public let checksums: [Double]
    public var description: String {
        "parameters diverged at step \(step): rank(s) \(ranks.map(String.init).joined(separator: ", ")) differ from rank 0 "
            + "(checksums \(ranks.map { "rank \($0): \(checksums[$0])" }.joined(separator: "; ")), rank 0: \(checksums[0]))"
    }
}

/// Checksums of parameter replicas.
public enum ReplicaCheck {
    /// A position-weighted sum of `values`, in Double: sensitive to a changed value and to swapped
    /// positions.
    @_specialize(where T == Float)
    public static func checksum<T: Real>(_ values: UnsafeBufferPointer<T>) -> Double {
        var total = 0.0
        for i in 0..<values.count { total += Double(values[i]) * Double(1 + i % 1021) }
        return total
    }

    /// Throws `ReplicaDivergenceError` naming every rank whose `checksum` differs from rank 0's.
    /// Collective: every rank must call it.
    public static func verify(checksum: Double, step: Int, comm: Communicator) throws {
        let all = try comm.allgather([checksum])
        let bad = all.indices.filter { all[$0] != all[0] && !(all[$0].isNaN && all[0].isNaN) }
        if !bad.isEmpty || all.contains(where: { !$0.isFinite }) {
            throw ReplicaDivergenceError(
                step: step, ranks: bad.isEmpty ? all.indices.filter { !all[$0].isFinite } : bad, checksums: all)
        }
    }
}

/// The rows of a global batch that one rank processes.
public enum BatchSharding {
    /// Rank `rank`'s contiguous slice of a global batch of `globalBatch` examples over `size`
    /// ranks (sizes differ by at most one). The global batch does not depend on the rank count,
    /// so 1, 2 or 4 ranks compute the same gradient.
    public static func slice(globalBatch: Int, rank: Int, size: Int) -> Range<Int> {
        (rank * globalBatch / size)..<((rank + 1) * globalBatch / size)
    }
}

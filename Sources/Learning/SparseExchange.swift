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

import CMPI

extension Communicator {
    // MARK: - Reduce-scatter and in-place allgatherv (the two halves of an allreduce)

    /// Element-wise reduction of `send` over all ranks, of which this rank receives only its
    /// part: `send` is split into consecutive parts of `counts[0]`, `counts[1]`, … elements and
    /// rank r receives the reduced part r in `receive` (`counts[rank]` elements).
    ///
    /// Together with `allgatherv(inPlace:counts:)` it is an allreduce whose middle step — work on
    /// the reduced data — can be split over the ranks (ZeRO's sharded optimizer update). One MPI
    /// call: `send.count` must not pass `maxElementsPerCall` (callers bucket larger buffers).
    @inlinable
    public func reduceScatter<T: MPIScalar>(
        _ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>, counts: [Int],
        op: ReduceOp = .sum
    ) throws {
        guard counts.count == size, counts.reduce(0, +) == send.count, receive.count == counts[rank] else {
            throw CollectiveError(
                call: "reduceScatter",
                message:
                    "counts \(counts) must have \(size) entries summing to \(send.count), the receive buffer \(receive.count) elements must equal this rank's count"
            )
        }
        guard send.count <= chunk else {
            throw CollectiveError(
                call: "reduceScatter", message: "\(send.count) elements exceed one call's limit \(chunk); bucket them")
        }
        if isLocal {
            if let dst = receive.baseAddress, let src = send.baseAddress, !send.isEmpty {
                dst.update(from: src, count: send.count)
            }
            return
        }
        var c32 = counts.map { Int32($0) }
        try locked {
            try check(
                MPI_Reduce_scatter(send.baseAddress, receive.baseAddress, &c32, T.mpiDatatype, op.handle, comm),
                "MPI_Reduce_scatter")
        }
    }

    /// In-place allgather of variable parts: `buffer` holds `counts[0]` elements of rank 0, then
    /// `counts[1]` of rank 1, …; every rank contributes its own part (already in place at its
    /// offset) and afterwards every rank holds all parts. One MPI call: `buffer.count` must not
    /// pass `maxElementsPerCall`.
    @inlinable
    public func allgatherv<T: MPIScalar>(inPlace buffer: UnsafeMutableBufferPointer<T>, counts: [Int]) throws {
        guard counts.count == size, counts.reduce(0, +) == buffer.count else {
            throw CollectiveError(
                call: "allgatherv(inPlace:)",
                message: "counts \(counts) must have \(size) entries summing to \(buffer.count)")
        }
        guard buffer.count <= chunk else {
            throw CollectiveError(
                call: "allgatherv(inPlace:)",
                message: "\(buffer.count) elements exceed one call's limit \(chunk); bucket them")
        }
        if isLocal { return }
        var c32 = counts.map { Int32($0) }
        var d32 = exclusiveSum(counts).map { Int32($0) }
        try locked {
            try check(
                MPI_Allgatherv(
                    mosaic_in_place(), 0, T.mpiDatatype, buffer.baseAddress, &c32, &d32, T.mpiDatatype, comm),
                "MPI_Allgatherv")
        }
    }
}

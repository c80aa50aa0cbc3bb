import CMPI

extension Communicator {
    /// Personalised exchange for rounds of a distributed loop: like `alltoallv(_:sendCounts:)`
    /// (`send` holds the elements for rank 0, then rank 1, …), and additionally returns the
    /// number of elements sent by all ranks together — the usual termination test of such a
    /// loop — without a separate allreduce: the count exchange carries each rank's total.
    ///
    /// Two MPI calls (`MPI_Alltoall` of (count, total) pairs, then `MPI_Alltoallv`) when the
    /// global total fits in one call, instead of the four of `alltoallv` plus an allreduce; larger
    /// exchanges fall back to the chunked `alltoallv`. The received elements go to memory the
    /// caller manages, such as a buffer reused from round to round (already faulted in: a fresh
    /// array of tens of MiB each round costs more in page faults than the exchange itself):
    /// `storage(n)` is called once with the number of elements this rank receives and returns
    /// room for at least `n` of them, where they are written in source-rank order. Returns the
    /// per-source counts and the total.
    public func alltoallvCounted<T: MPIScalar>(
        _ send: UnsafeBufferPointer<T>, sendCounts: [Int], storage: (Int) throws -> UnsafeMutablePointer<T>
    ) throws -> (counts: [Int], total: Int) {
        guard sendCounts.count == size, sendCounts.reduce(0, +) == send.count else {
            throw CollectiveError(
                call: "alltoallvCounted",
                message: "sendCounts \(sendCounts) must have \(size) entries summing to \(send.count)")
        }
        if isLocal {
            let out = try storage(send.count)
            if let base = send.baseAddress { out.update(from: base, count: send.count) }
            return (sendCounts, send.count)
        }
        var pairs = [Int64](repeating: 0, count: 2 * size), got = pairs
        for r in 0..<size {
            pairs[2 * r] = Int64(sendCounts[r])
            pairs[2 * r + 1] = Int64(send.count)
        }
        try pairs.withUnsafeMutableBufferPointer { s in
            try got.withUnsafeMutableBufferPointer { g in
                try locked {
                    try check(
                        MPI_Alltoall(s.baseAddress, 2, Int64.mpiDatatype, g.baseAddress, 2, Int64.mpiDatatype, comm),
                        "MPI_Alltoall")
                }
            }
        }
        let recvCounts = (0..<size).map { Int(got[2 * $0]) }
        let total = (0..<size).reduce(0) { $0 + Int(got[2 * $1 + 1]) }
        let n = recvCounts.reduce(0, +)
        if total > chunk {
            // Every rank sees the same total, so all take this path together.
            let (values, _) = try alltoallv(Array(send), sendCounts: sendCounts, recvCounts: recvCounts)
            let out = try storage(n)
            values.withUnsafeBufferPointer { v in if let base = v.baseAddress { out.update(from: base, count: n) } }
            return (recvCounts, total)
        }
        var sc = sendCounts.map { Int32($0) }, sd = exclusiveSum(sendCounts).map { Int32($0) }
        var rc = recvCounts.map { Int32($0) }, rd = exclusiveSum(recvCounts).map { Int32($0) }
        let out = try storage(n)
        try locked {
            try check(
                MPI_Alltoallv(send.baseAddress, &sc, &sd, T.mpiDatatype, out, &rc, &rd, T.mpiDatatype, comm),
                "MPI_Alltoallv")
        }
        return (recvCounts, total)
    }
}

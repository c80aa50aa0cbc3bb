import CMPI

// Glossary: p = world size, n = element count, counts[r] = elements from/to rank r.

extension Communicator {
    // MARK: - Broadcast and allreduce (contiguous, chunked)

    /// Replaces `buffer` on every rank with root's `buffer`. Every rank must pass a buffer of
    /// root's length (use `broadcast(_:root:)` returning an array when the length is unknown).
    @inlinable
    public func broadcast<T: MPIScalar>(_ buffer: inout [T], root: Int = 0) throws {
        try buffer.withUnsafeMutableBufferPointer { try broadcast($0, root: root) }
    }

    /// Broadcasts the contents of a raw buffer from `root`, in chunks of `maxElementsPerCall`.
    @inlinable
    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int = 0) throws {
        if isLocal { return }  // one rank: the root's buffer is already here
        var offset = 0
        while offset < buffer.count {
            let n = Swift.min(chunk, buffer.count - offset)
            try locked {
                try check(
                    MPI_Bcast(buffer.baseAddress! + offset, Int32(n), T.mpiDatatype, Int32(root), comm),
                    "MPI_Bcast")
            }
            offset += n
        }
    }

    /// Root's array, of any length, on every rank.
    public func broadcastArray<T: MPIScalar>(_ values: [T], root: Int = 0) throws -> [T] {
        var count = [Int64(values.count)]
        try broadcast(&count, root: root)
        var out = rank == root ? values : [T](zeroed: Int(count[0]))
        try broadcast(&out, root: root)
        return out
    }

    /// Root's string on every rank (UTF-8 bytes).
    public func broadcast(string: String, root: Int = 0) throws -> String {
        let bytes = try broadcastArray(Array(string.utf8), root: root)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Element-wise reduction of `buffer` over all ranks, in place: afterwards every rank holds
    /// the same result. Chunked when `buffer.count > maxElementsPerCall`.
    @inlinable
    public func allreduce<T: MPIScalar>(_ buffer: inout [T], op: ReduceOp = .sum) throws {
        try buffer.withUnsafeMutableBufferPointer { try allreduce($0, op: op) }
    }

    /// In-place allreduce over a raw buffer (for parameter and gradient buffers).
    @inlinable
    public func allreduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp = .sum) throws {
        if isLocal { return }  // one rank: the reduction of one contribution is itself
        var offset = 0
        while offset < buffer.count {
            let n = Swift.min(chunk, buffer.count - offset)
            try locked {
                try check(
                    MPI_Allreduce(
                        mosaic_in_place(), buffer.baseAddress! + offset, Int32(n), T.mpiDatatype,
                        op.handle, comm),
                    "MPI_Allreduce")
            }
            offset += n
        }
    }

    /// The reduction of one value over all ranks.
    public func allreduce<T: MPIScalar>(_ value: T, op: ReduceOp = .sum) throws -> T {
        var buffer = [value]
        try allreduce(&buffer, op: op)
        return buffer[0]
    }

    // MARK: - Gathers

    /// Every rank contributes `values` (the same count on every rank); returns the
    /// concatenation in rank order, `p * n` elements, on every rank.
    public func allgather<T: MPIScalar>(_ values: [T]) throws -> [T] {
        let counts = try allgatherCounts(values.count)
        guard counts.allSatisfy({ $0 == values.count }) else {
            throw CollectiveError(
                call: "allgather",
                message: "ranks contributed different counts \(counts); use allgatherv")
        }
        return try allgatherv(values, counts: counts)
    }

    /// Every rank contributes any number of values; returns the concatenation in rank order and
    /// the per-rank counts, on every rank.
    public func allgatherv<T: MPIScalar>(_ values: [T]) throws -> (values: [T], counts: [Int]) {
        let counts = try allgatherCounts(values.count)
        return (try allgatherv(values, counts: counts), counts)
    }

    /// Gathers every rank's `values` on `root` (rank order). Other ranks get an empty array.
    public func gatherv<T: MPIScalar>(_ values: [T], root: Int = 0) throws -> (values: [T], counts: [Int]) {
        let counts = try allgatherCounts(values.count)
        let sendCounts = (0..<size).map { $0 == root ? values.count : 0 }
        let (received, _) = try alltoallv(
            values, sendCounts: sendCounts, recvCounts: rank == root ? counts : Array(repeating: 0, count: size))
        return (received, rank == root ? counts : [])
    }

    /// Gathers one value per rank on `root`; other ranks get an empty array.
    public func gather<T: MPIScalar>(_ value: T, root: Int = 0) throws -> [T] {
        try gatherv([value], root: root).values
    }

    /// Each rank's count, on every rank.
    func allgatherCounts(_ count: Int) throws -> [Int] {
        if isLocal { return [count] }
        var mine = Int64(count)
        var all = [Int64](repeating: 0, count: size)
        try all.withUnsafeMutableBufferPointer { out in
            try locked {
                try check(
                    MPI_Allgather(&mine, 1, Int64.mpiDatatype, out.baseAddress, 1, Int64.mpiDatatype, comm),
                    "MPI_Allgather")
            }
        }
        return all.map(Int.init)
    }

    func allgatherv<T: MPIScalar>(_ values: [T], counts: [Int]) throws -> [T] {
        if isLocal { return values }
        let total = counts.reduce(0, +)
        var out = [T](zeroed: total)
        let displs = exclusiveSum(counts)
        // Each round moves at most `perRank` elements from each rank, so no count or
        // displacement of one call passes Int32.max.
        let perRank = Swift.max(1, chunk / Swift.max(1, size))
        let maxCount = counts.max() ?? 0
        let nRounds = maxCount == 0 ? 0 : (maxCount + perRank - 1) / perRank
        if total <= chunk {
            var c32 = counts.map { Int32($0) }
            var d32 = displs.map { Int32($0) }
            try values.withUnsafeBufferPointer { send in
                try out.withUnsafeMutableBufferPointer { recv in
                    try locked {
                        try check(
                            MPI_Allgatherv(
                                send.baseAddress, Int32(values.count), T.mpiDatatype, recv.baseAddress,
                                &c32, &d32, T.mpiDatatype, comm),
                            "MPI_Allgatherv")
                    }
                }
            }
            return out
        }
        for round in 0..<nRounds {
            let start = round * perRank
            let roundCounts = counts.map { Swift.max(0, Swift.min(perRank, $0 - start)) }
            var c32 = roundCounts.map { Int32($0) }
            var d32 = exclusiveSum(roundCounts).map { Int32($0) }
            var tmp = [T](zeroed: roundCounts.reduce(0, +))
            let mine = roundCounts[rank]
            try values.withUnsafeBufferPointer { send in
                try tmp.withUnsafeMutableBufferPointer { recv in
                    try locked {
                        try check(
                            MPI_Allgatherv(
                                send.baseAddress.map { $0 + Swift.min(start, values.count) }, Int32(mine),
                                T.mpiDatatype, recv.baseAddress, &c32, &d32, T.mpiDatatype, comm),
                            "MPI_Allgatherv")
                    }
                }
            }
            var src = 0
            for r in 0..<size where roundCounts[r] > 0 {
                let dst = displs[r] + start
                out.replaceSubrange(dst..<(dst + roundCounts[r]), with: tmp[src..<(src + roundCounts[r])])
                src += roundCounts[r]
            }
        }
        return out
    }

    // MARK: - All-to-all

    /// Each rank sends `values` (the same count `n` to every rank, `p * n` elements in rank
    /// order) and receives `n` from each rank, in rank order.
    public func alltoall<T: MPIScalar>(_ values: [T]) throws -> [T] {
        guard values.count % size == 0 else {
            throw CollectiveError(
                call: "alltoall", message: "\(values.count) elements do not split evenly over \(size) ranks")
        }
        let n = values.count / size
        return try alltoallv(values, sendCounts: Array(repeating: n, count: size)).values
    }

    /// Personalised exchange: `values` holds the elements for rank 0, then rank 1, …, with
    /// `sendCounts[r]` elements for rank r. Returns what every rank sent to this one, in rank
    /// order, and the per-source counts. Counts are exchanged first, so receivers need not know
    /// them.
    public func alltoallv<T: MPIScalar>(_ values: [T], sendCounts: [Int]) throws -> (values: [T], counts: [Int]) {
        guard sendCounts.count == size, sendCounts.reduce(0, +) == values.count else {
            throw CollectiveError(
                call: "alltoallv",
                message: "sendCounts \(sendCounts) must have \(size) entries summing to \(values.count)")
        }
        if isLocal { return (values, sendCounts) }
        var send64 = sendCounts.map(Int64.init)
        var recv64 = [Int64](repeating: 0, count: size)
        try send64.withUnsafeMutableBufferPointer { s in
            try recv64.withUnsafeMutableBufferPointer { r in
                try locked {
                    try check(
                        MPI_Alltoall(s.baseAddress, 1, Int64.mpiDatatype, r.baseAddress, 1, Int64.mpiDatatype, comm),
                        "MPI_Alltoall")
                }
            }
        }
        return try alltoallv(values, sendCounts: sendCounts, recvCounts: recv64.map(Int.init))
    }

    func alltoallv<T: MPIScalar>(_ values: [T], sendCounts: [Int], recvCounts: [Int]) throws -> (
        values: [T], counts: [Int]
    ) {
        if isLocal { return (Array(values.prefix(recvCounts[0])), recvCounts) }
        let sendDispls = exclusiveSum(sendCounts)
        let recvDispls = exclusiveSum(recvCounts)
        var out = [T](zeroed: recvCounts.reduce(0, +))
        // One call when every count and displacement fits in Int32 on every rank (the common
        // case); otherwise rounds that move at most `perRank` elements per pair, so that no
        // count or displacement of one call passes the limit. All ranks agree on the plan.
        let localNeed = Int64(Swift.max(values.count, out.count))
        let localMax = Int64(Swift.max(sendCounts.max() ?? 0, recvCounts.max() ?? 0))
        var plan = [localNeed, localMax]
        try plan.withUnsafeMutableBufferPointer { try allreduceUnchunked($0, op: .max) }
        if plan[0] <= Int64(chunk) {
            try exchange(values, sendCounts, sendDispls, into: &out, recvCounts, recvDispls)
            return (out, recvCounts)
        }
        let perRank = Swift.max(1, chunk / Swift.max(1, size))
        let nRounds = Int((plan[1] + Int64(perRank) - 1) / Int64(perRank))
        for round in 0..<nRounds {
            let start = round * perRank
            let sc = sendCounts.map { Swift.max(0, Swift.min(perRank, $0 - start)) }
            let rc = recvCounts.map { Swift.max(0, Swift.min(perRank, $0 - start)) }
            var sendBuf = [T]()
            sendBuf.reserveCapacity(sc.reduce(0, +))
            for r in 0..<size where sc[r] > 0 {
                sendBuf.append(contentsOf: values[(sendDispls[r] + start)..<(sendDispls[r] + start + sc[r])])
            }
            var recvBuf = [T](zeroed: rc.reduce(0, +))
            try exchange(sendBuf, sc, exclusiveSum(sc), into: &recvBuf, rc, exclusiveSum(rc))
            var src = 0
            for r in 0..<size where rc[r] > 0 {
                let dst = recvDispls[r] + start
                out.replaceSubrange(dst..<(dst + rc[r]), with: recvBuf[src..<(src + rc[r])])
                src += rc[r]
            }
        }
        return (out, recvCounts)
    }

    /// One `MPI_Alltoallv`; every count and displacement must fit in Int32.
    private func exchange<T: MPIScalar>(
        _ send: [T], _ sc: [Int], _ sd: [Int], into recv: inout [T], _ rc: [Int], _ rd: [Int]
    ) throws {
        var sc32 = sc.map { Int32($0) }
        var sd32 = sd.map { Int32($0) }
        var rc32 = rc.map { Int32($0) }
        var rd32 = rd.map { Int32($0) }
        try send.withUnsafeBufferPointer { s in
            try recv.withUnsafeMutableBufferPointer { r in
                try locked {
                    try check(
                        MPI_Alltoallv(
                            s.baseAddress, &sc32, &sd32, T.mpiDatatype, r.baseAddress, &rc32, &rd32,
                            T.mpiDatatype, comm),
                        "MPI_Alltoallv")
                }
            }
        }
    }

    func allreduceUnchunked<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws {
        if isLocal { return }
        try locked {
            try check(
                MPI_Allreduce(
                    mosaic_in_place(), buffer.baseAddress, Int32(buffer.count), T.mpiDatatype, op.handle, comm),
                "MPI_Allreduce")
        }
    }
}

extension Array where Element: MPIScalar {
    /// An array of `count` elements whose bytes are zero (every `MPIScalar` is a plain number).
    init(zeroed count: Int) {
        self.init(unsafeUninitializedCapacity: count) { buffer, initialised in
            if count > 0 { memset(buffer.baseAddress!, 0, MemoryLayout<Element>.stride * count) }
            initialised = count
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif

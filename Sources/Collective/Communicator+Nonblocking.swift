import CMPI

// Non-blocking collectives (MPI-3 style): each returns a started `CollectiveRequest`.
//
// Reduce-scatter, allgatherv and alltoallv are built on point-to-point messages (MPI_Isend /
// MPI_Irecv, one message per peer and chunk) rather than on MPI_Ireduce_scatter & co.:
// OpenMPI 4.1's non-blocking reduce-scatter (libnbc) reduces the whole buffer on rank 0 and then
// scatters it (1.5× the bytes of a blocking reduce-scatter and all the reduction on one rank),
// while direct exchange moves each part once and lets every rank reduce only its own part.
// Sums are taken in rank order (part from rank 0 + rank 1 + …), so they are deterministic.
//
// Every rank must start the same non-blocking collectives in the same order (as with blocking
// collectives); messages of one kind and tag between two ranks match in the order they were
// started. Collectives that ranks may start in different orders (e.g. as each rank's transfers
// happen to complete) need distinct `tag`s.

/// Message tags of the point-to-point collectives: one range per kind, offset by the caller's
/// `tag` (0 ..< `Communicator.nonblockingTagLimit`; MPI guarantees tags up to 32767).
@usableFromInline enum NonblockingTag {
    @usableFromInline static let reduceScatter: Int32 = 1_000
    @usableFromInline static let allgatherv: Int32 = 11_000
    @usableFromInline static let alltoallv: Int32 = 21_000

    @usableFromInline static func tag(_ base: Int32, _ tag: Int, call: String) throws -> Int32 {
        guard (0..<Communicator.nonblockingTagLimit).contains(tag) else {
            throw CollectiveError(call: call, message: "tag \(tag) outside 0..<\(Communicator.nonblockingTagLimit)")
        }
        return base + Int32(tag)
    }
}

extension Communicator {
    /// `tag`s of the non-blocking collectives are in `0..<nonblockingTagLimit`.
    public static let nonblockingTagLimit = 10_000

    /// Starts sending and receiving contiguous pieces: `sends[q]` goes to rank q and `receives[q]`
    /// comes from rank q (this rank's own entries are skipped), each in messages of at most
    /// `chunk` elements. Receives are posted first.
    @usableFromInline
    func postExchange<T: MPIScalar>(
        sends: [UnsafeBufferPointer<T>], receives: [UnsafeMutableBufferPointer<T>], tag: Int32, call: String
    ) throws -> [MPI_Request?] {
        var requests: [MPI_Request?] = []
        func post(_ body: (inout MPI_Request?) -> Int32, _ name: String) throws {
            var request: MPI_Request? = nil
            let rc = locked { body(&request) }
            if rc != MPI_SUCCESS {
                // Do not leave MPI writing into buffers the caller may free after the error.
                let n = Int32(requests.count)
                if n > 0 { _ = locked { MPI_Waitall(n, &requests, nil) } }
                throw CollectiveError(call: "\(name) (\(call))", message: mpiErrorString(rc))
            }
            requests.append(request)
        }
        let step = chunk
        for q in 0..<size where q != rank {
            let buffer = receives[q]
            var offset = 0
            while offset < buffer.count {
                let n = Swift.min(step, buffer.count - offset)
                try post(
                    { MPI_Irecv(buffer.baseAddress! + offset, Int32(n), T.mpiDatatype, Int32(q), tag, comm, &$0) },
                    "MPI_Irecv")
                offset += n
            }
        }
        for q in 0..<size where q != rank {
            let buffer = sends[q]
            var offset = 0
            while offset < buffer.count {
                let n = Swift.min(step, buffer.count - offset)
                try post(
                    { MPI_Isend(buffer.baseAddress! + offset, Int32(n), T.mpiDatatype, Int32(q), tag, comm, &$0) },
                    "MPI_Isend")
                offset += n
            }
        }
        return requests
    }

    /// `inout ← inbuf op inout`, element-wise, in chunks (MPI_Reduce_local).
    @usableFromInline
    func reduceLocal<T: MPIScalar>(
        _ input: UnsafePointer<T>, into output: UnsafeMutablePointer<T>, count: Int, op: ReduceOp
    )
        throws
    {
        var offset = 0
        while offset < count {
            let n = Swift.min(chunk, count - offset)
            try check(
                MPI_Reduce_local(input + offset, output + offset, Int32(n), T.mpiDatatype, op.handle),
                "MPI_Reduce_local")
            offset += n
        }
    }

    // MARK: - Reduce-scatter

    /// Starts the non-blocking form of `reduceScatter(_:into:counts:op:)`: `send` is cut into
    /// consecutive parts of `counts[0]`, `counts[1]`, … elements and this rank receives in
    /// `receive` (`counts[rank]` elements) the element-wise reduction over ranks of its part,
    /// taken in rank order. Any size (messages are chunked at `maxElementsPerCall`).
    ///
    /// Traffic: each rank sends every other rank its part once; it stages `(size − 1) ×
    /// counts[rank]` elements and reduces them when the request completes. `tag` (see
    /// `nonblockingTagLimit`) separates reduce-scatters that ranks may start in different orders.
    public func startReduceScatter<T: MPIScalar>(
        _ send: UnsafeBufferPointer<T>, into receive: UnsafeMutableBufferPointer<T>, counts: [Int],
        op: ReduceOp = .sum, tag: Int = 0
    ) throws -> CollectiveRequest {
        let call = "startReduceScatter"
        let messageTag = try NonblockingTag.tag(NonblockingTag.reduceScatter, tag, call: call)
        guard counts.count == size, counts.allSatisfy({ $0 >= 0 }), counts.reduce(0, +) == send.count,
            receive.count == counts[rank]
        else {
            throw CollectiveError(
                call: call,
                message:
                    "counts \(counts) must have \(size) non-negative entries summing to \(send.count), the receive buffer \(receive.count) elements must equal this rank's count"
            )
        }
        let offsets = exclusiveSum(counts)
        let own = UnsafeBufferPointer(rebasing: send[offsets[rank]..<offsets[rank] + counts[rank]])
        if isLocal || size == 1 {
            if let dst = receive.baseAddress, let src = own.baseAddress, !own.isEmpty {
                dst.update(from: src, count: own.count)
            }
            return .completed(call)
        }
        let mine = counts[rank]
        let staging = StagingBuffer<T>(count: mine * size)  // slot q holds rank q's contribution
        let slots = (0..<size).map { UnsafeMutableBufferPointer(rebasing: staging.buffer[$0 * mine..<($0 + 1) * mine]) }
        let sends = (0..<size).map { UnsafeBufferPointer(rebasing: send[offsets[$0]..<offsets[$0] + counts[$0]]) }
        let requests = try postExchange(sends: sends, receives: slots, tag: messageTag, call: call)
        let rank = self.rank, size = self.size
        let finish: () throws -> Void = { [self] in
            guard mine > 0 else { return }
            let out = receive.baseAddress!
            out.update(from: rank == 0 ? own.baseAddress! : UnsafePointer(slots[0].baseAddress!), count: mine)
            for q in 1..<size {
                let part = q == rank ? own.baseAddress! : UnsafePointer(slots[q].baseAddress!)
                try reduceLocal(part, into: out, count: mine, op: op)
            }
        }
        return CollectiveRequest(call: call, requests: requests, finish: finish, retained: [staging])
    }

    // MARK: - Allgatherv in place

    /// Starts the non-blocking form of `allgatherv(inPlace:counts:)`: `buffer` holds
    /// `counts[0]` elements of rank 0, then `counts[1]` of rank 1, …; this rank's part is already
    /// in place and the others arrive at their offsets. Any size (chunked).
    public func startAllgatherv<T: MPIScalar>(
        inPlace buffer: UnsafeMutableBufferPointer<T>, counts: [Int], tag: Int = 0
    ) throws -> CollectiveRequest {
        let call = "startAllgatherv(inPlace:)"
        let messageTag = try NonblockingTag.tag(NonblockingTag.allgatherv, tag, call: call)
        guard counts.count == size, counts.allSatisfy({ $0 >= 0 }), counts.reduce(0, +) == buffer.count else {
            throw CollectiveError(
                call: call,
                message: "counts \(counts) must have \(size) non-negative entries summing to \(buffer.count)")
        }
        if isLocal || size == 1 { return .completed(call) }
        let offsets = exclusiveSum(counts)
        let parts = (0..<size).map {
            UnsafeMutableBufferPointer(rebasing: buffer[offsets[$0]..<offsets[$0] + counts[$0]])
        }
        let own = UnsafeBufferPointer(parts[rank])
        let requests = try postExchange(
            sends: [UnsafeBufferPointer<T>](repeating: own, count: size), receives: parts,
            tag: messageTag, call: call)
        return CollectiveRequest(call: call, requests: requests)
    }

    // MARK: - Alltoallv with known counts

    /// Starts a non-blocking alltoallv whose counts both sides already know (e.g. from a blocking
    /// `alltoall` of the counts): `send` holds `sendCounts[q]` elements for rank q back to back,
    /// and `receive` gets `receiveCounts[q]` elements from rank q back to back, in rank order.
    /// This rank's own block is copied at once. Any size (chunked).
    public func startAlltoallv<T: MPIScalar>(
        _ send: UnsafeBufferPointer<T>, sendCounts: [Int], into receive: UnsafeMutableBufferPointer<T>,
        receiveCounts: [Int], tag: Int = 0
    ) throws -> CollectiveRequest {
        let call = "startAlltoallv"
        let messageTag = try NonblockingTag.tag(NonblockingTag.alltoallv, tag, call: call)
        guard sendCounts.count == size, receiveCounts.count == size,
            sendCounts.allSatisfy({ $0 >= 0 }), receiveCounts.allSatisfy({ $0 >= 0 }),
            sendCounts.reduce(0, +) == send.count, receiveCounts.reduce(0, +) == receive.count,
            sendCounts[rank] == receiveCounts[rank]
        else {
            throw CollectiveError(
                call: call,
                message:
                    "send counts \(sendCounts) (buffer \(send.count)) and receive counts \(receiveCounts) (buffer \(receive.count)) must have \(size) entries matching their buffers and the same count to this rank"
            )
        }
        let so = exclusiveSum(sendCounts), ro = exclusiveSum(receiveCounts)
        let sends = (0..<size).map { UnsafeBufferPointer(rebasing: send[so[$0]..<so[$0] + sendCounts[$0]]) }
        let receives = (0..<size).map {
            UnsafeMutableBufferPointer(rebasing: receive[ro[$0]..<ro[$0] + receiveCounts[$0]])
        }
        if let dst = receives[rank].baseAddress, let src = sends[rank].baseAddress, sendCounts[rank] > 0 {
            dst.update(from: src, count: sendCounts[rank])
        }
        if isLocal || size == 1 { return .completed(call) }
        let requests = try postExchange(sends: sends, receives: receives, tag: messageTag, call: call)
        return CollectiveRequest(call: call, requests: requests)
    }

    // MARK: - Allreduce

    /// Starts an in-place non-blocking allreduce of `buffer` (MPI_Iallreduce, one request per
    /// chunk of `maxElementsPerCall` elements); afterwards every rank holds the same result.
    public func startAllreduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp = .sum) throws
        -> CollectiveRequest
    {
        let call = "startAllreduce"
        if isLocal || size == 1 || buffer.isEmpty { return .completed(call) }
        var requests: [MPI_Request?] = []
        var offset = 0
        while offset < buffer.count {
            let n = Swift.min(chunk, buffer.count - offset)
            var request: MPI_Request? = nil
            let rc = locked {
                MPI_Iallreduce(
                    mosaic_in_place(), buffer.baseAddress! + offset, Int32(n), T.mpiDatatype, op.handle, comm, &request)
            }
            if rc != MPI_SUCCESS {
                let count = Int32(requests.count)
                if count > 0 { _ = locked { MPI_Waitall(count, &requests, nil) } }
                throw CollectiveError(call: "MPI_Iallreduce (\(call))", message: mpiErrorString(rc))
            }
            requests.append(request)
            offset += n
        }
        return CollectiveRequest(call: call, requests: requests)
    }
}

import CMPI

/// A started non-blocking collective (MPI-3 style): the call returns at once, the data moves
/// while the caller computes, and `test()` / `wait()` finish it.
///
/// OpenMPI has no asynchronous progress thread on shared memory: messages advance only inside
/// MPI calls. Call `test()` on the requests in flight now and then (e.g. between the layers of a
/// backward pass); any MPI call of this process also progresses them.
///
/// Buffers passed to the `start…` calls belong to MPI until the request completes: the send
/// side must not change and the receive side must not be read before `test()` returns true or
/// `wait()` returns. A request that is dropped unfinished waits for completion in `deinit`
/// (so MPI never writes into freed memory).
public final class CollectiveRequest {
    /// The operation, e.g. `startReduceScatter`, for error messages.
    public let call: String
    @usableFromInline var requests: [MPI_Request?]
    /// Work that runs once when every message has arrived (e.g. reducing staged parts).
    @usableFromInline var finish: (() throws -> Void)?
    /// Keeps staging buffers alive until completion.
    @usableFromInline var retained: [AnyObject]
    /// True once every message has completed and `finish` has run.
    public private(set) var isComplete: Bool

    @usableFromInline
    init(call: String, requests: [MPI_Request?], finish: (() throws -> Void)? = nil, retained: [AnyObject] = []) {
        self.call = call
        self.requests = requests
        self.finish = finish
        self.retained = retained
        isComplete = false
    }

    /// An already finished request (one-rank worlds, empty transfers).
    @usableFromInline static func completed(_ call: String) -> CollectiveRequest {
        let r = CollectiveRequest(call: call, requests: [])
        r.isComplete = true
        return r
    }

    /// Advances the transfer without blocking; true when it is complete (then the receive
    /// buffers hold the result).
    @discardableResult
    public func test() throws -> Bool {
        if isComplete { return true }
        if !requests.isEmpty {
            var flag: Int32 = 0
            let n = Int32(requests.count)
            let rc = MPIRuntime.shared.lock.withLock { _ in MPI_Testall(n, &requests, &flag, nil) }
            if rc != MPI_SUCCESS { throw CollectiveError(call: "MPI_Testall (\(call))", message: mpiErrorString(rc)) }
            if flag == 0 { return false }
            requests = []
        }
        try complete()
        return true
    }

    /// Blocks until the transfer is complete.
    public func wait() throws {
        if isComplete { return }
        if !requests.isEmpty {
            let n = Int32(requests.count)
            let rc = MPIRuntime.shared.lock.withLock { _ in MPI_Waitall(n, &requests, nil) }
            if rc != MPI_SUCCESS { throw CollectiveError(call: "MPI_Waitall (\(call))", message: mpiErrorString(rc)) }
            requests = []
        }
        try complete()
    }

    private func complete() throws {
        isComplete = true
        let work = finish
        finish = nil
        try work?()
        retained = []
    }

    deinit {
        if !requests.isEmpty {
            let n = Int32(requests.count)
            _ = MPIRuntime.shared.lock.withLock { _ in MPI_Waitall(n, &requests, nil) }
        }
    }
}

extension CollectiveRequest {
    /// Waits for every request, in order (the first error is thrown after all were waited for).
    public static func waitAll(_ requests: [CollectiveRequest]) throws {
        var firstError: (any Error)?
        for r in requests {
            do { try r.wait() } catch { if firstError == nil { firstError = error } }
        }
        if let firstError { throw firstError }
    }

    /// Tests every request once (progress); true when all are complete.
    @discardableResult
    public static func testAll(_ requests: [CollectiveRequest]) throws -> Bool {
        var done = true
        for r in requests where try !r.test() { done = false }
        return done
    }
}

/// A heap buffer owned by a request until it completes.
@usableFromInline
final class StagingBuffer<T>: @unchecked Sendable {
    @usableFromInline let buffer: UnsafeMutableBufferPointer<T>
    @usableFromInline init(count: Int) {
        buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: Swift.max(count, 1))
    }
    deinit { buffer.deallocate() }
}

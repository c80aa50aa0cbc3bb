@_exported import Scalars
import CMPI
import Foundation
import Synchronization

/// An error from an MPI call, with the call named.
public struct CollectiveError: Error, CustomStringConvertible, Sendable {
    /// The MPI function or Mosaic operation that failed, e.g. `MPI_Allreduce`.
    public let call: String
    /// MPI's error string, or Mosaic's explanation.
    public let message: String
    public var description: String { "\(call) failed: \(message)" }

    public init(call: String, message: String) {
        self.call = call
        self.message = message
    }
}

/// Reduction operators for `allreduce`.
public enum ReduceOp: Sendable {
    case sum, max, min
    @inlinable var handle: MPI_Op {
        switch self {
        case .sum: mosaic_op_sum()
        case .max: mosaic_op_max()
        case .min: mosaic_op_min()
        }
    }
}

extension MPIScalar {
    /// The matching MPI datatype handle (of `scalarKind`).
    @inlinable public static var mpiDatatype: MPI_Datatype {
        switch scalarKind {
        case .float32: mosaic_type_float()
        case .float64: mosaic_type_double()
        case .int32: mosaic_type_int32()
        case .int64: mosaic_type_int64()
        case .uint8: mosaic_type_uint8()
        case .uint64: mosaic_type_uint64()
        }
    }
}

/// Process-wide MPI state: initialised once, finalised at exit.
///
/// Serial access is enforced with one lock, so unit tests that run on several threads may share
/// the world (MPI is initialised with `MPI_THREAD_SERIALIZED`).
@usableFromInline
final class MPIRuntime: @unchecked Sendable {
    @usableFromInline static let shared = MPIRuntime()
    /// Held around every MPI call (a futex-based lock: uncontended cost is a few ns).
    @usableFromInline let lock = Mutex<Void>(())
    private let initLock = NSLock()
    private(set) var initialised = false

    func ensureInitialised() throws {
        initLock.lock()
        defer { initLock.unlock() }
        if initialised { return }
        var already: Int32 = 0
        MPI_Initialized(&already)
        if already == 0 {
            var provided: Int32 = 0
            let rc = MPI_Init_thread(nil, nil, Int32(MPI_THREAD_SERIALIZED), &provided)
            guard rc == MPI_SUCCESS else {
                throw CollectiveError(call: "MPI_Init_thread", message: mpiErrorString(rc))
            }
            atexit {
                var finalised: Int32 = 0
                MPI_Finalized(&finalised)
                if finalised == 0 { MPI_Finalize() }
            }
        }
        // Errors come back as return codes and become Swift errors, instead of aborting.
        MPI_Comm_set_errhandler(mosaic_comm_world(), mosaic_errors_return())
        initialised = true
    }
}

@usableFromInline
func mpiErrorString(_ code: Int32) -> String {
    var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
    var length: Int32 = 0
    MPI_Error_string(code, &buffer, &length)
    let text = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return "\(text) (code \(code))"
}

/// A group of ranks that take part in collectives: the MPI world, or a one-rank world when the
/// binary runs without `mpirun`.
///
/// Without a launcher (no `OMPI_COMM_WORLD_SIZE`, `PMIX_RANK` or `PMI_RANK` in the environment)
/// the world is a local one-rank communicator that never initialises MPI: unit tests and the
/// serving shard need no MPI runtime, and no MPI daemon or signal handler enters the process.
/// Set `MOSAIC_FORCE_MPI=1` (or call `world(forceMPI: true)`) for a real MPI singleton.
///
/// Every collective is blocking and must be called by every rank in the same order. Element
/// counts above `maxElementsPerCall` (default `Int32.max`, MPI 3's limit) are split into
/// several calls, so buffers of any size can be moved.
public struct Communicator: @unchecked Sendable {
    @usableFromInline let comm: MPI_Comm
    /// True for the launcher-less one-rank world: collectives are local copies, MPI is never called.
    public let isLocal: Bool
    /// This process's rank, `0 ..< size`.
    public let rank: Int
    /// The number of ranks.
    public let size: Int
    /// Largest element count passed to one MPI call; larger transfers are chunked. Tests set it
    /// small to exercise the chunked paths.
    public var maxElementsPerCall: Int

    /// True when an MPI launcher (mpirun, srun with PMI/PMIx) started this process.
    public static var launchedByMPI: Bool {
        let env = ProcessInfo.processInfo.environment
        return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"].contains { env[$0] != nil }
    }

    /// The world communicator. Initialises MPI on first use when launched by mpirun (or when
    /// `forceMPI` or `MOSAIC_FORCE_MPI=1` asks for it); otherwise a local one-rank world.
    public static func world(forceMPI: Bool = false) throws -> Communicator {
        let force = forceMPI || ProcessInfo.processInfo.environment["MOSAIC_FORCE_MPI"] == "1"
        guard force || launchedByMPI || MPIRuntime.shared.initialised else {
            return Communicator(
                comm: mosaic_comm_world(), isLocal: true, rank: 0, size: 1, maxElementsPerCall: Int(Int32.max))
        }
        try MPIRuntime.shared.ensureInitialised()
        var rank: Int32 = 0
        var size: Int32 = 0
        MPI_Comm_rank(mosaic_comm_world(), &rank)
        MPI_Comm_size(mosaic_comm_world(), &size)
        return Communicator(
            comm: mosaic_comm_world(), isLocal: false, rank: Int(rank), size: Int(size),
            maxElementsPerCall: Int(Int32.max))
    }

    /// True on rank 0, the rank that logs and writes manifests.
    public var isRoot: Bool { rank == 0 }

    /// The host name this rank runs on (`MPI_Get_processor_name`).
    public func processorName() -> String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_PROCESSOR_NAME) + 1)
        var length: Int32 = 0
        if isLocal {
            gethostname(&buffer, buffer.count - 1)
            length = Int32(strlen(buffer))
        } else {
            locked { _ = MPI_Get_processor_name(&buffer, &length) }
        }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Ends every rank of the job with `code` (`MPI_Abort`). Used by jobs on fatal errors so
    /// that no rank is left waiting in a collective.
    public func abort(code: Int32 = 1) -> Never {
        if !isLocal { MPI_Abort(comm, code) }
        exit(code)
    }

    @inlinable @inline(__always)
    func locked<R>(_ body: () throws -> R) rethrows -> R {
        try MPIRuntime.shared.lock.withLock { _ in try body() }
    }

    @inlinable @inline(__always)
    func check(_ rc: Int32, _ call: @autoclosure () -> String) throws {
        if rc != MPI_SUCCESS { throw CollectiveError(call: call(), message: mpiErrorString(rc)) }
    }

    /// Blocks until every rank has arrived.
    public func barrier() throws {
        if isLocal { return }
        try locked { try check(MPI_Barrier(comm), "MPI_Barrier") }
    }

    /// Chunk length for a contiguous transfer of `count` elements.
    @inlinable var chunk: Int { Swift.max(1, Swift.min(maxElementsPerCall, Int(Int32.max))) }
}

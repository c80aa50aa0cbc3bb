import CHDF5
import Foundation

/// An error reading or writing an artifact: names the file, the object inside it, and what was
/// expected or what HDF5 said.
public struct ArtifactError: Error, CustomStringConvertible, Sendable {
    /// The file's path.
    public let file: String
    /// The group, dataset or attribute inside the file, if any (e.g. `/embeddings`).
    public let object: String?
    /// What went wrong and what was expected.
    public let message: String

    public init(file: String, object: String? = nil, message: String) {
        self.file = file
        self.object = object
        self.message = message
    }

    public var description: String {
        if let object { return "\(file): \(object): \(message)" }
        return "\(file): \(message)"
    }
}

/// Serialises every HDF5 call of the process: the serial HDF5 library is not thread-safe.
enum HDF5 {
    static let lock = NSRecursiveLock()

    @inline(__always)
    static func locked<R>(_ body: () throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        // HDF5 keeps its error-printing setting per thread in thread-safe builds (Debian's is):
        // silence it on whatever thread calls; failures become Swift errors instead.
        mosaic_h5_silence_errors()
        return try body()
    }

    /// The innermost description on HDF5's error stack (what actually failed), or "".
    static func lastErrorDetail() -> String {
        var messages: [String] = []
        withUnsafeMutablePointer(to: &messages) { ptr in
            _ = H5Ewalk2(
                mosaic_h5e_default(), H5E_WALK_DOWNWARD,
                { _, desc, data in
                    if let desc, let text = desc.pointee.desc {
                        data!.assumingMemoryBound(to: [String].self).pointee.append(String(cString: text))
                    }
                    return 0
                }, ptr)
        }
        H5Eclear2(mosaic_h5e_default())
        return messages.last ?? ""
    }
}

/// Element types an artifact dataset or numeric attribute can hold.
public protocol H5Scalar: Sendable {
    /// The HDF5 native memory type.
    static var h5Type: hid_t { get }
    /// A short name used in error messages (`float32`, `int64`, …).
    static var h5Name: String { get }
}
extension Float: H5Scalar {
    public static var h5Type: hid_t { mosaic_h5t_float() }
    public static var h5Name: String { "float32" }
}
extension Double: H5Scalar {
    public static var h5Type: hid_t { mosaic_h5t_double() }
    public static var h5Name: String { "float64" }
}
extension Int32: H5Scalar {
    public static var h5Type: hid_t { mosaic_h5t_int32() }
    public static var h5Name: String { "int32" }
}
extension Int64: H5Scalar {
    public static var h5Type: hid_t { mosaic_h5t_int64() }
    public static var h5Name: String { "int64" }
}
extension UInt8: H5Scalar {
    public static var h5Type: hid_t { mosaic_h5t_uint8() }
    public static var h5Name: String { "uint8" }
}

/// An open HDF5 file. Closed when the last reference (including its groups and datasets) goes.
public final class H5File: @unchecked Sendable {
    /// How to open a file.
    public enum Mode: Sendable {
        /// Existing file, read only.
        case read
        /// Existing file, read and write.
        case readWrite
        /// New file; an existing one is truncated.
        case create
    }

    /// The file's path.
    public let path: String
    let id: hid_t

    /// Opens or creates `path`.
    ///
    /// Throws `ArtifactError` when the file is missing, is not HDF5 (e.g. truncated or of another
    /// format), or cannot be created.
    public init(path: String, mode: Mode) throws {
        self.path = path
        id = try HDF5.locked {
            // No HDF5 flock: Mosaic's concurrency protocol is private staging files plus an atomic
            // publish, so a reader never meets a writer; and a lock inherited by a child process
            // forked at the wrong moment would outlive the file's close.
            let fapl = H5Pcreate(mosaic_h5p_file_access())
            defer { H5Pclose(fapl) }
            H5Pset_file_locking(fapl, false, true)
            switch mode {
            case .create:
                let fid = H5Fcreate(path, mosaic_h5f_acc_trunc(), mosaic_h5p_default(), fapl)
                if fid < 0 {
                    throw ArtifactError(file: path, message: "cannot create HDF5 file: \(HDF5.lastErrorDetail())")
                }
                Self.closeOnExec(fid)
                return fid
            case .read, .readWrite:
                guard FileManager.default.fileExists(atPath: path) else {
                    throw ArtifactError(file: path, message: "file does not exist")
                }
                if H5Fis_hdf5(path) <= 0 {
                    _ = HDF5.lastErrorDetail()
                    throw ArtifactError(
                        file: path, message: "not a readable HDF5 file (truncated, corrupt, or another format)")
                }
                let flags = mode == .read ? mosaic_h5f_acc_rdonly() : mosaic_h5f_acc_rdwr()
                let fid = H5Fopen(path, flags, fapl)
                if fid < 0 {
                    throw ArtifactError(
                        file: path,
                        message: "cannot open HDF5 file (truncated or corrupt?): \(HDF5.lastErrorDetail())")
                }
                Self.closeOnExec(fid)
                return fid
            }
        }
    }

    deinit { HDF5.locked { _ = H5Fclose(id) } }

    /// Marks the file's descriptor close-on-exec. HDF5 opens files without `O_CLOEXEC` and
    /// holds an flock on them: a child process spawned while the file is open (a test running
    /// mpirun, a job calling a tool) would inherit the descriptor and keep the lock after the
    /// file is closed here.
    static func closeOnExec(_ fid: hid_t) {
        var handle: UnsafeMutableRawPointer? = nil
        guard H5Fget_vfd_handle(fid, mosaic_h5p_default(), &handle) >= 0, let handle else {
            H5Eclear2(mosaic_h5e_default())
            return
        }
        let fd = handle.load(as: Int32.self)
        let flags = fcntl(fd, F_GETFD)
        if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
    }

    /// The root group `/`.
    public var root: H5Group { H5Group(file: self, id: -1, path: "/") }

    /// Writes buffered data to disk.
    public func flush() throws {
        try HDF5.locked {
            if H5Fflush(id, H5F_SCOPE_LOCAL) < 0 {
                throw ArtifactError(file: path, message: "flush failed: \(HDF5.lastErrorDetail())")
            }
        }
    }
}

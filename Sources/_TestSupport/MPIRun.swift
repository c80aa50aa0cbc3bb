import Foundation

/// Launches the built `mosaic` executable under `mpirun -np N` from a test, the way the
/// multi-rank tests check that 1, 2 and 4 ranks agree.
public enum MPIRun {
    /// What a launched job printed and how it ended.
    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
        /// Both streams, for failure messages.
        public var output: String { stdout + stderr }
    }

    /// The folder holding the built products (`mosaic` sits beside the test bundle).
    public static var productsDirectory: URL {
        let bundle = Bundle.allBundles.first { $0.bundlePath.hasSuffix(".xctest") }
        if let bundle { return bundle.bundleURL.deletingLastPathComponent() }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    /// Path of the built `mosaic` executable.
    public static var mosaicPath: String { productsDirectory.appendingPathComponent("mosaic").path }

    /// True when `mpirun` is on the PATH.
    public static var mpirunAvailable: Bool { which("mpirun") != nil }

    /// Runs `mosaic arguments…` on `ranks` ranks (`--oversubscribe`, `--allow-run-as-root` as
    /// root, one BLAS thread per rank), with a timeout, and returns its output.
    ///
    /// The child gets a clean MPI environment: the test process may itself be an MPI singleton
    /// whose `OMPI_*`/`PMIX_*` variables would confuse a nested mpirun.
    public static func mosaic(ranks: Int, _ arguments: [String], timeout: TimeInterval = 300) throws -> Result {
        guard let mpirun = which("mpirun") else {
            return Result(status: 127, stdout: "", stderr: "mpirun not found on PATH (install openmpi-bin)")
        }
        var args = ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none"]
        if getuid() == 0 { args.append("--allow-run-as-root") }
        args += ["-x", "OPENBLAS_NUM_THREADS", mosaicPath] + arguments
        return try run(mpirun, args, timeout: timeout)
    }

    /// Runs `mosaic arguments…` directly (a one-rank world, no mpirun).
    public static func mosaicSingleton(_ arguments: [String], timeout: TimeInterval = 300) throws -> Result {
        try run(mosaicPath, arguments, timeout: timeout)
    }

    /// Runs any program with the clean environment described above.
    public static func run(_ executable: String, _ arguments: [String], timeout: TimeInterval = 300) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment.filter { key, _ in
            !(key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") || key.hasPrefix("ORTE_") || key.hasPrefix("OPAL_"))
        }
        env["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = env
        let outPipe = Pipe(), errPipe = Pipe()
        // Close-on-exec on every end: a process forked meanwhile by this one (the `orted` that
        // a first in-process MPI singleton initialisation starts) must not inherit the write
        // ends, or the reads below never see EOF. The child still gets its copies (dup2).
        for handle in [outPipe.fileHandleForReading, outPipe.fileHandleForWriting,
                       errPipe.fileHandleForReading, errPipe.fileHandleForWriting] {
            _ = fcntl(handle.fileDescriptor, F_SETFD, FD_CLOEXEC)
        }
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes concurrently so a chatty child never blocks on a full pipe.
        nonisolated(unsafe) var outData = Data(), errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outData = outPipe.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter()
        DispatchQueue.global().async { errData = errPipe.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            // Timed out: kill it, and never wait forever for a child nobody may reap.
            kill(process.processIdentifier, SIGKILL)
            let grace = Date().addingTimeInterval(5)
            while process.isRunning && Date() < grace { usleep(20_000) }
            if process.isRunning {
                return Result(status: -1, stdout: "", stderr: "\(executable) timed out after \(timeout) s and could not be reaped")
            }
            _ = group.wait(timeout: .now() + 5)
            return Result(
                status: -1, stdout: String(decoding: outData, as: UTF8.self),
                stderr: String(decoding: errData, as: UTF8.self) + "\n\(executable) timed out after \(timeout) s")
        }
        process.waitUntilExit()
        group.wait()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData, as: UTF8.self))
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// A fresh temporary folder for a test's files.
    public static func temporaryDirectory(_ name: String = "mosaic-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

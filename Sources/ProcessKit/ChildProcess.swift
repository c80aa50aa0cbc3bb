import Foundation

/// Runs another program and captures what it prints: the one subprocess runner of the
/// benchmarks (peers, `mosaic` under mpirun) and of the tests (jobs under `mpirun -np N`).
///
/// The child gets a clean MPI environment: this process may itself be an MPI rank or singleton
/// whose `OMPI_*` / `PMIX_*` / `ORTE_*` / `OPAL_*` variables would confuse a nested mpirun or a
/// Python peer. It also gets `OPENBLAS_NUM_THREADS=1` unless `environment` says otherwise.
public enum ChildProcess {
    /// What a child printed and how it ended.
    public struct Result: Sendable {
        /// Exit status; -1 when it timed out and was killed.
        public let status: Int32
        public let stdout: String
        public let stderr: String
        /// Both streams, for failure messages.
        public var output: String { stdout + stderr }

        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    /// This process's environment without MPI launch variables, with one BLAS thread.
    public static var cleanEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { key, _ in
            !(key.hasPrefix("OMPI_") || key.hasPrefix("PMIX_") || key.hasPrefix("ORTE_") || key.hasPrefix("OPAL_"))
        }
        env["OPENBLAS_NUM_THREADS"] = "1"
        return env
    }

    /// Runs `executable arguments…` (a path, or a name looked up on the PATH) and waits for it.
    ///
    /// - Parameters:
    ///   - environment: variables set on top of `cleanEnvironment`.
    ///   - timeout: seconds before the child is killed (SIGKILL); its status is then -1.
    ///   - forwardStderr: also copy the child's stderr to ours as it arrives (progress lines).
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:],
        timeout: TimeInterval = 3600, forwardStderr: Bool = false
    ) throws -> Result {
        let process = Process()
        // A bare name (`python3`) is looked up on the PATH, as a shell would.
        let path = executable.contains("/") ? executable : (which(executable) ?? executable)
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = cleanEnvironment.merging(environment) { _, new in new }
        let outPipe = Pipe(), errPipe = Pipe()
        // Close-on-exec on every end: a process forked meanwhile by this one (the `orted` that
        // a first in-process MPI singleton initialisation starts) must not inherit the write
        // ends, or the reads below never see EOF. The child still gets its copies (dup2).
        for handle in [
            outPipe.fileHandleForReading, outPipe.fileHandleForWriting,
            errPipe.fileHandleForReading, errPipe.fileHandleForWriting,
        ] {
            _ = fcntl(handle.fileDescriptor, F_SETFD, FD_CLOEXEC)
        }
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes concurrently so a chatty child never blocks on a full pipe.
        let out = Captured(), err = Captured()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            out.append(outPipe.fileHandleForReading.readDataToEndOfFile())
            group.leave()
        }
        group.enter()
        DispatchQueue.global().async {
            let handle = errPipe.fileHandleForReading
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                err.append(chunk)
                if forwardStderr { FileHandle.standardError.write(chunk) }
            }
            group.leave()
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            // Timed out: kill it, and never wait forever for a child nobody may reap.
            kill(process.processIdentifier, SIGKILL)
            let grace = Date().addingTimeInterval(5)
            while process.isRunning && Date() < grace { usleep(20_000) }
            if process.isRunning {
                return Result(
                    status: -1, stdout: "", stderr: "\(executable) timed out after \(timeout) s and could not be reaped"
                )
            }
            _ = group.wait(timeout: .now() + 5)
            return Result(
                status: -1, stdout: out.text, stderr: err.text + "\n\(executable) timed out after \(timeout) s")
        }
        process.waitUntilExit()
        group.wait()
        return Result(status: process.terminationStatus, stdout: out.text, stderr: err.text)
    }

    /// The full path of `name` on the PATH, or nil.
    public static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// The path of the running executable (`/proc/self/exe`), to relaunch it under mpirun.
    public static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// Bytes read from one pipe on a reader thread, handed to the waiting thread.
    private final class Captured: @unchecked Sendable {
        private let lock = NSLock()
        private var data = Data()
        func append(_ d: Data) { lock.lock(); data.append(d); lock.unlock() }
        var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
    }
}

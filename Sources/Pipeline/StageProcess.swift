import Foundation

/// One stage's command running under its launcher: its output goes to the stage's log file and
/// to this process's stderr; its ranks' peak memory is sampled; a time limit kills it.
struct StageProcess {
    /// How a stage's process ended.
    struct Outcome {
        var status: Int32
        var timedOut: Bool
        var seconds: Double
        /// Peak resident memory by rank (MiB), from the ranks' `VmHWM`, sampled every 0.5 s.
        var peakMiBPerRank: [Double]
        /// The log's text.
        var log: String
    }

    var arguments: [String]
    var executable: String
    var logFile: URL
    var timeLimit: TimeInterval
    var quiet: Bool

    func run() throws -> Outcome {
        try FileManager.default.createDirectory(
            at: logFile.deletingLastPathComponent(), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let log = try FileHandle(forWritingTo: logFile)
        defer { try? log.close() }
        let process = Process()
        let program = arguments[0]
        process.executableURL = URL(
            fileURLWithPath: program.contains("/") ? program : (Self.which(program) ?? program))
        process.arguments = Array(arguments.dropFirst())
        var env = ProcessInfo.processInfo.environment.filter { key, _ in
            !["OMPI_COMM_WORLD", "PMIX_", "ORTE_", "OMPI_MCA_ess", "OMPI_MCA_orte"].contains(where: key.hasPrefix)
        }
        env["OPENBLAS_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] ?? "1"
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let start = Date()
        try process.run()
        let done = DispatchSemaphore(value: 0)
        let text = LockedText()
        let quiet = quiet
        DispatchQueue.global().async {
            let handle = pipe.fileHandleForReading
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                log.write(chunk)
                text.append(chunk)
                if !quiet { FileHandle.standardError.write(chunk) }
            }
            done.signal()
        }
        var peaks: [Int: Double] = [:]
        var timedOut = false
        let deadline = start.addingTimeInterval(timeLimit)
        while process.isRunning {
            for (rank, mib) in Self.rankPeaks(root: process.processIdentifier, executable: executable) {
                peaks[rank] = max(peaks[rank] ?? 0, mib)
            }
            if Date() > deadline && !timedOut {
                timedOut = true
                kill(process.processIdentifier, SIGTERM)
                DispatchQueue.global().asyncAfter(deadline: .now() + 10) { [pid = process.processIdentifier] in
                    kill(pid, SIGKILL)
                }
            }
            usleep(500_000)
        }
        process.waitUntilExit()
        done.wait()
        let ranks = (peaks.keys.max() ?? -1) + 1
        return Outcome(
            status: process.terminationStatus, timedOut: timedOut, seconds: Date().timeIntervalSince(start),
            peakMiBPerRank: (0..<ranks).map { peaks[$0] ?? 0 }, log: text.text)
    }

    /// The peak RSS (MiB) of every descendant of `root` running `executable`, by MPI rank.
    static func rankPeaks(root: Int32, executable: String) -> [Int: Double] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [:] }
        var parent: [Int32: Int32] = [:]
        for e in entries {
            guard let pid = Int32(e), let stat = try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 1, let ppid = Int32(fields[1]) { parent[pid] = ppid }
        }
        let target = URL(fileURLWithPath: executable).resolvingSymlinksInPath().path
        var out: [Int: Double] = [:]
        for pid in parent.keys {
            var p = pid
            var descends = false
            for _ in 0..<16 {
                guard let up = parent[p] else { break }
                if up == root { descends = true; break }
                p = up
            }
            guard descends,
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) == target,
                let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                let kib = Double(line.split(separator: " ").dropFirst().first ?? "")
            else { continue }
            var rank = 0
            if let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") {
                for v in environ.split(separator: 0) {
                    let s = String(decoding: v, as: UTF8.self)
                    if s.hasPrefix("OMPI_COMM_WORLD_RANK="), let r = Int(s.dropFirst(21)) { rank = r }
                }
            }
            out[rank] = max(out[rank] ?? 0, kib / 1024)
        }
        return out
    }

    /// Why a stage failed, from its status and its log: the rank and signal mpirun reports, the
    /// job's own error line, or the exit status.
    static func diagnose(stage: String, outcome: Outcome, timeLimitMinutes: Int) -> String {
        var parts: [String] = []
        if outcome.timedOut { parts.append("killed after its time limit of \(timeLimitMinutes) min (TIME=)") }
        let lines = outcome.log.split(separator: "\n")
        if let line = lines.first(where: { $0.contains("exited on signal") || $0.contains("killed by signal") }),
            let rank = line.range(of: #"rank (\d+)"#, options: .regularExpression),
            let signal = line.range(of: #"signal (\d+)( \([A-Za-z ]+\))?"#, options: .regularExpression)
        {
            parts.append("\(line[rank]) ended on \(line[signal])")
        }
        if let error = lines.first(where: { $0.contains("error:") || $0.hasPrefix("Error:") }) {
            parts.append(String(error.trimmingCharacters(in: .whitespaces)))
        }
        if parts.isEmpty { parts.append("exit status \(outcome.status)") }
        return "stage \(stage) failed: " + parts.joined(separator: "; ")
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Bytes appended by the reader thread, read by the waiting one.
    final class LockedText: @unchecked Sendable {
        private let lock = NSLock()
        private var data = Data()
        func append(_ d: Data) { lock.lock(); data.append(d); lock.unlock() }
        var text: String { lock.lock(); defer { lock.unlock() }; return String(decoding: data, as: UTF8.self) }
    }
}

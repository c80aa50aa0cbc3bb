import Foundation

/// What the runner knows of one night: every stage's last attempt, in `RUN/.pipeline/state.json`
/// (rewritten atomically after every change, so a killed runner leaves a readable file).
public struct PipelineState: Codable, Sendable, Equatable {
    /// A stage's last attempt.
    public struct Stage: Codable, Sendable, Equatable {
        public enum Status: String, Codable, Sendable { case running, done, failed }
        public var status: Status
        /// The command line it ran, expanded (its configuration).
        public var command: String
        public var ranks: Int
        /// ISO 8601 start time (metadata).
        public var started: String
        public var seconds: Double
        /// Fingerprints of its inputs when it started and of its outputs when it ended.
        public var inputs: String
        public var outputs: String
        /// Why it failed (the rank, the signal, the error line).
        public var message: String?
        /// Whether this attempt resumed from the stage's checkpoint.
        public var resumed: Bool
        /// Peak resident memory of each rank, MiB (sampled).
        public var peakMiBPerRank: [Double]
    }

    public var night: String
    public var stages: [String: Stage]

    public init(night: String, stages: [String: Stage] = [:]) {
        self.night = night
        self.stages = stages
    }

    /// The state file of the night in `run`.
    public static func url(run: URL) -> URL { run.appendingPathComponent(".pipeline/state.json") }

    /// Reads the state of the night in `run` (empty when none was written).
    public static func read(run: URL, night: String) throws -> PipelineState {
        let url = url(run: run)
        guard let data = try? Data(contentsOf: url) else { return PipelineState(night: night) }
        do { return try JSONDecoder().decode(PipelineState.self, from: data) } catch {
            throw PipelineError("\(url.path): unreadable pipeline state (\(error)); delete it to start the night over")
        }
    }

    /// Writes it atomically (temporary file, then rename).
    public func write(run: URL) throws {
        let url = Self.url(run: run)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: url, options: .atomic)
    }
}

/// A path's fingerprint: for a file its size and modification time, for a folder the same of
/// every file under it (hidden ones too), so any write below it changes the fingerprint.
public enum Fingerprint {
    /// One line per path: `path bytes files newest-mtime-ns`; `missing` for an absent path.
    public static func of(_ paths: [String]) -> String {
        paths.map { path -> String in
            var (bytes, files, newest): (Int64, Int, Int64) = (0, 0, 0)
            let fm = FileManager.default
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDir) else { return "\(path) missing" }
            func visit(_ p: String) {
                var st = stat()
                guard lstat(p, &st) == 0 else { return }
                files += 1
                bytes += Int64(st.st_size)
                newest = max(newest, Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
            }
            if isDir.boolValue {
                for case let rel as String in fm.enumerator(atPath: path) ?? NSEnumerator() {
                    visit(path + "/" + rel)
                }
            } else {
                visit(path)
            }
            return "\(path) \(bytes) \(files) \(newest)"
        }.joined(separator: "\n")
    }
}

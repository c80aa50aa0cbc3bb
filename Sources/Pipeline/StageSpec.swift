import Foundation

/// An error in a pipeline file or run, naming the file (and line) and what to do.
public struct PipelineError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One stage of the nightly pipeline, as declared by a `Jobs/*.job` file: plain `KEY=value`
/// lines (values optionally in double quotes; `#` starts a comment line), which a shell can also
/// source. Values may hold `${VAR}`, expanded when the stage runs (`Variables`).
///
/// | key | meaning |
/// |---|---|
/// | `NAME` | the stage's name (logs, `--only`, `--from`) |
/// | `RANKS` | MPI ranks |
/// | `COMMAND` | the `mosaic` subcommand and its options |
/// | `INPUTS` | paths the stage reads (space-separated); a `.env` input's `KEY=value` lines are variables |
/// | `OUTPUTS` | paths it writes (removed before it runs, unless it resumes) |
/// | `TIME` | wall-clock limit, minutes (killed after it locally; `--time` under Slurm) |
/// | `MEMORY` | memory per node for the scheduler, e.g. `4G` (optional) |
/// | `CHECKPOINT` | a checkpoint file the command writes while it runs (optional) |
/// | `RESUME` | options that make the command resume from `CHECKPOINT` (optional) |
public struct StageSpec: Equatable, Sendable {
    public var name: String
    public var ranks: Int
    public var command: String
    public var inputs: [String]
    public var outputs: [String]
    /// Wall-clock limit, minutes.
    public var timeMinutes: Int
    public var memory: String?
    public var checkpoint: String?
    public var resume: String?
    /// The file it was read from.
    public var file: String

    public init(
        name: String, ranks: Int, command: String, inputs: [String] = [], outputs: [String] = [],
        timeMinutes: Int = 60, memory: String? = nil, checkpoint: String? = nil, resume: String? = nil,
        file: String = "<memory>"
    ) {
        self.name = name
        self.ranks = ranks
        self.command = command
        self.inputs = inputs
        self.outputs = outputs
        self.timeMinutes = timeMinutes
        self.memory = memory
        self.checkpoint = checkpoint
        self.resume = resume
        self.file = file
    }

    static let keys: Set<String> = [
        "NAME", "RANKS", "COMMAND", "INPUTS", "OUTPUTS", "TIME", "MEMORY", "CHECKPOINT", "RESUME",
    ]

    /// Reads a spec file.
    public static func read(_ path: String) throws -> StageSpec {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw PipelineError("\(path): cannot read the stage spec")
        }
        return try parse(text, file: path)
    }

    /// Parses a spec's text; errors name `file:line` and the key.
    public static func parse(_ text: String, file: String) throws -> StageSpec {
        var values: [String: String] = [:]
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw PipelineError("\(file):\(i + 1): expected KEY=value, got '\(line)'")
            }
            let key = String(line[..<eq])
            guard keys.contains(key) else {
                throw PipelineError(
                    "\(file):\(i + 1): unknown key '\(key)' (known: \(keys.sorted().joined(separator: ", ")))")
            }
            var value = String(line[line.index(after: eq)...])
            if value.hasPrefix("\"") {
                guard value.count >= 2, value.hasSuffix("\"") else {
                    throw PipelineError("\(file):\(i + 1): \(key)'s value opens a quote it does not close")
                }
                value = String(value.dropFirst().dropLast())
            }
            values[key] = value
        }
        func required(_ key: String) throws -> String {
            guard let v = values[key], !v.isEmpty else { throw PipelineError("\(file): missing \(key)=…") }
            return v
        }
        func positive(_ key: String) throws -> Int {
            let text = try required(key)
            guard let v = Int(text), v >= 1 else {
                throw PipelineError("\(file): \(key)=\(text) must be a positive integer")
            }
            return v
        }
        func list(_ key: String) -> [String] { (values[key] ?? "").split(separator: " ").map(String.init) }
        let optional = { (key: String) -> String? in values[key].flatMap { $0.isEmpty ? nil : $0 } }
        return StageSpec(
            name: try required("NAME"), ranks: try positive("RANKS"), command: try required("COMMAND"),
            inputs: list("INPUTS"), outputs: list("OUTPUTS"), timeMinutes: try positive("TIME"),
            memory: optional("MEMORY"), checkpoint: optional("CHECKPOINT"), resume: optional("RESUME"), file: file)
    }
}

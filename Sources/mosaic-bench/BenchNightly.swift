import ArgumentParser
import Foundation
import Pipeline
import ProcessKit

/// `mosaic-bench nightly`: the whole nightly DAG on a large world, every stage's wall time and
/// peak memory per rank, and what a larger night would take at the measured rates.
struct BenchNightly: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nightly",
        abstract: "Run Jobs/nightly.dag on a large world: seconds and peak MiB per rank of every stage.",
        discussion: """
            Runs the DAG with the pipeline runner (the release `mosaic` beside this executable, \
            Cluster/mpirun-local.sh, --ranks ranks per stage) in --root, then prints one row per \
            stage (seconds, share of the night, peak RSS per rank sampled by the runner) and a \
            projection of the night to --project-pins pins on --project-ranks ranks, scaling each \
            stage's time by pins per rank (an assumption that holds only as far as the stages scale).
            """)

    @Option(help: "World users.") var users = 100_000
    @Option(help: "World pins (initial catalogue).") var pins = 1_000_000
    @Option(help: "Ranks per stage.") var ranks = 2
    @Option(help: "The pipeline's root (deleted afterwards unless --keep).") var root = "out/bench-nightly"
    @Option(
        name: .customLong("set"),
        help: "More DAG overrides (NAME=value, repeatable); the bench trains shorter than the defaults.")
    var overrides: [String] = ["PINSAGE_STEPS=100", "TWO_TOWER_EPOCHS=2", "RANKER_EPOCHS=5"]
    @Option(help: "Projection: pins of the projected night.") var projectPins = 10_000_000_000.0
    @Option(help: "Projection: rank counts, comma-separated.") var projectRanks = "512,2048"
    @Flag(help: "Keep the night's files.") var keep = false

    func run() throws {
        let here = URL(fileURLWithPath: ChildProcess.currentExecutable).deletingLastPathComponent()
        let repo = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let dagPath = repo.appendingPathComponent("Jobs/nightly.dag").path
        guard FileManager.default.fileExists(atPath: dagPath) else {
            throw ValidationError("run it from the repository root (no Jobs/nightly.dag here)")
        }
        let dag = try PipelineDAG.read(dagPath).withRanks(ranks)
        let rootURL = URL(fileURLWithPath: root).standardizedFileURL
        try? FileManager.default.removeItem(at: rootURL)
        defer { if !keep { try? FileManager.default.removeItem(at: rootURL) } }
        var options = PipelineRunner.Options(
            dag: dag, root: rootURL, night: "bench", executable: here.appendingPathComponent("mosaic").path)
        options.launcher = [repo.appendingPathComponent("Cluster/mpirun-local.sh").path, "-np", "{ranks}"]
        options.overrides = ["USERS": "\(users)", "PINS": "\(pins)"]
        for o in overrides {
            guard let eq = o.firstIndex(of: "=") else { throw ValidationError("--set \(o): expected NAME=value") }
            options.overrides[String(o[..<eq])] = String(o[o.index(after: eq)...])
        }
        options.quiet = true
        let t0 = now()
        try PipelineRunner(options: options) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }.run()
        let total = now() - t0
        let state = try PipelineState.read(run: options.run, night: "bench")
        let plan = try dag.plan(variables: options.variables)
        let settings = options.overrides.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        print("nightly DAG: \(ranks) ranks per stage; \(settings.joined(separator: " "))")
        print("| stage | seconds | share | peak RSS per rank (MiB) |")
        print("|---|---:|---:|---|")
        var stagesSum = 0.0
        for s in plan.stages {
            guard let r = state.stages[s.spec.name] else { continue }
            stagesSum += r.seconds
            let mem = r.peakMiBPerRank.map { String(format: "%.0f", $0) }.joined(separator: ", ")
            print(String(format: "| %@ | %.1f | %.1f %% | %@ |", s.spec.name, r.seconds, 100 * r.seconds / total, mem))
        }
        print(String(format: "| whole night (with publishing) | %.1f | 100 %% | |", total))
        let factor = projectPins / Double(pins)
        for n in projectRanks.split(separator: ",").compactMap({ Int($0) }) {
            let hours = stagesSum * factor * Double(ranks) / Double(n) / 3600
            print(
                String(
                    format:
                        "projection: %.0e pins on %d ranks ≈ %.1f h (every stage's time × pins ratio %.0f × %d / %d ranks)",
                    projectPins, n, hours, factor, ranks, n))
        }
    }
}

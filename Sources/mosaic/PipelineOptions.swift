import ArgumentParser
import Foundation
import Pipeline
import ProcessKit

/// The options every `mosaic pipeline` command shares: which DAG, which root and night.
struct PipelineOptions: ParsableArguments {
    @Argument(help: "The DAG file (stage specs and variables), e.g. Jobs/nightly.dag.") var dag = "Jobs/nightly.dag"
    @Option(help: "Root folder of the pipeline's nights (runs/<night>, current, published).") var root = "out/nightly"
    @Option(help: "The night's id (its folder under <root>/runs; default: today's UTC date).") var night: String?
    @Option(
        name: .customLong("set"),
        help: ArgumentHelp("Override a DAG variable, e.g. --set USERS=500 (repeatable).", valueName: "NAME=value"))
    var overrides: [String] = []
    @Option(help: "Run every MPI stage (spec RANKS > 1) on this many ranks; serial stages keep 1.") var ranks: Int?
    @Option(help: "Run only this stage (its inputs must exist).") var only: String?
    @Option(help: "Run this stage and every stage after it that depends on it.") var from: String?
    @Option(
        help: """
            The launcher before `mosaic` ({ranks} = the stage's ranks; "none": run directly). Default: \
            Cluster/mpirun-local.sh -np {ranks} beside the DAG's repository, else mpirun -np {ranks}.
            """)
    var launcher: String?
    @Option(help: "The mosaic executable the stages run (default: this one).") var mosaic: String?

    func validate() throws {
        for o in overrides where !o.contains("=") { throw ValidationError("--set \(o): expected NAME=value") }
        if let ranks, ranks < 1 { throw ValidationError("--ranks must be ≥ 1") }
    }

    /// Today's UTC date, the default night id (one night a day; rerunning it resumes it).
    static var today: String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }

    /// The runner's options.
    func runnerOptions() throws -> PipelineRunner.Options {
        let graph = try PipelineDAG.read(dag)
        let rootURL = URL(fileURLWithPath: root).standardizedFileURL
        var o = PipelineRunner.Options(
            dag: graph, root: rootURL, night: night ?? Self.today,
            executable: mosaic.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
                ?? ChildProcess.currentExecutable)
        for s in overrides {
            let eq = s.firstIndex(of: "=")!
            o.overrides[String(s[..<eq])] = String(s[s.index(after: eq)...])
        }
        if let ranks { o.dag = o.dag.withRanks(ranks) }
        o.only = only
        o.from = from
        o.launcher = defaultLauncher
        if let launcher { o.launcher = launcher == "none" ? [] : launcher.split(separator: " ").map(String.init) }
        return o
    }

    /// Cluster/mpirun-local.sh of the DAG's repository when present, else plain mpirun.
    var defaultLauncher: [String] {
        let repo = URL(fileURLWithPath: dag).standardizedFileURL.deletingLastPathComponent().deletingLastPathComponent()
        let local = repo.appendingPathComponent("Cluster/mpirun-local.sh").path
        if FileManager.default.isExecutableFile(atPath: local) { return [local, "-np", "{ranks}"] }
        return ["mpirun", "-np", "{ranks}"] + (getuid() == 0 ? ["--allow-run-as-root"] : [])
    }
}

/// `mosaic pipeline`: the nightly DAG on this machine or on Slurm.
struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Run the nightly DAG of stage specs (Jobs/*.job): locally, or submitted to Slurm.",
        discussion: """
            Not an MPI job: run it directly; it launches each stage under mpirun. Layout: \
            <root>/runs/<night>/ holds every stage's outputs (${RUN} in the specs) and .pipeline/ \
            (state.json, logs/<stage>.log); <root>/current points at the published night.
            """,
        subcommands: [PipelineRun.self, PipelineStatus.self, PipelineSubmit.self])
}

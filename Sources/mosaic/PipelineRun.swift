import ArgumentParser
import Foundation
import Pipeline

/// `mosaic pipeline run`: the night's stages in dependency order on this machine.
struct PipelineRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the night's stages in dependency order; publish it when all have succeeded.",
        discussion: """
            A stage whose command, inputs and outputs are unchanged since it last succeeded is \
            skipped; a stage that failed resumes from its checkpoint (CHECKPOINT and RESUME in its \
            spec) when rerun; otherwise its outputs are removed and it runs again. The night is \
            published (its manifest written with every file's checksum, <root>/current swapped \
            atomically) only when every stage of the DAG has succeeded. Exit status 1 names the \
            failed stage, the rank and the signal or error, and its log.
            """)

    @OptionGroup var pipeline: PipelineOptions
    @Flag(help: "Print the plan (stages, ranks, commands, up to date or not) and run nothing.") var dryRun = false
    @Flag(help: "Do not publish the night when it completes.") var noPublish = false
    @Option(help: "Published nights kept; older ones are deleted.") var keep = 3
    @Flag(help: "Do not copy the stages' output to stderr (it still goes to their logs).") var quiet = false

    func validate() throws {
        guard keep >= 1 else { throw ValidationError("--keep must be ≥ 1") }
    }

    func run() throws {
        var options = try pipeline.runnerOptions()
        options.publish = !noPublish
        options.keep = keep
        options.quiet = quiet
        let runner = PipelineRunner(options: options) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        if dryRun {
            print("night \(options.night) in \(options.run.path); launcher: \(options.launcher.joined(separator: " "))")
            for (i, p) in try runner.dryRun().enumerated() {
                let after = p.stage.dependencies.isEmpty ? "" : " after \(p.stage.dependencies.joined(separator: ", "))"
                print(
                    "\(i + 1). \(p.stage.spec.name) [\(p.stage.spec.ranks) ranks, \(p.stage.spec.timeMinutes) min\(after)]\(p.upToDate ? " up to date" : "")"
                )
                print("   \(p.command)")
            }
            return
        }
        do { try runner.run() } catch let error as PipelineError {
            FileHandle.standardError.write(Data("mosaic pipeline: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// `mosaic pipeline status`: each stage's state, time, memory and outputs.
struct PipelineStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show each stage of a night: state, time, peak memory per rank, outputs.")

    @OptionGroup var pipeline: PipelineOptions

    func run() throws {
        let options = try pipeline.runnerOptions()
        let plan = try options.dag.plan(variables: options.variables)
        let state = try PipelineState.read(run: options.run, night: options.night)
        let published = NightPublisher.history(root: options.root)
        print(
            "night \(options.night) (\(options.run.path)); published: \(published.last ?? "none")\(published.contains(options.night) ? " — this night" : "")"
        )
        print("| stage | state | started | seconds | peak MiB per rank | outputs |")
        print("|---|---|---|---:|---|---|")
        for s in plan.stages {
            let r = state.stages[s.spec.name]
            let outputs = s.outputs.map { o -> String in
                let name = URL(fileURLWithPath: o).lastPathComponent
                return FileManager.default.fileExists(atPath: o) ? name : "\(name) (missing)"
            }.joined(separator: " ")
            let memory = r?.peakMiBPerRank.map { String(format: "%.0f", $0) }.joined(separator: ", ") ?? ""
            let status = (r?.status.rawValue ?? "not run") + (r?.resumed == true ? " (resumed)" : "")
            print(
                "| \(s.spec.name) | \(status) | \(r?.started ?? "") | \(r.map { String(format: "%.1f", $0.seconds) } ?? "") | \(memory) | \(outputs) |"
            )
            if let m = r?.message { print("|  ↳ | \(m) | | | | |") }
        }
    }
}

import ArgumentParser
import Foundation
import Artifacts
import Pipeline

/// `mosaic pipeline submit`: the night as Slurm jobs chained with afterok.
struct PipelineSubmit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Submit the night to Slurm: one sbatch job per stage, chained with --dependency=afterok.",
        discussion: """
            Run it on a login node from the repository root. Each job runs --script inside its \
            allocation (Cluster/slurm/stage.sbatch: `mosaic pipeline run --only STAGE` with mpirun \
            taking the hosts and slots from Slurm); a last job publishes the night when all the \
            stages succeeded. Prints one line per job: stage, job id, the jobs it waits for.
            """)

    @OptionGroup var pipeline: PipelineOptions
    @Option(help: "The batch script each job runs.") var script = "Cluster/slurm/stage.sbatch"
    @Option(help: "The sbatch program.") var sbatch = "sbatch"
    @Flag(help: "Do not submit the publish job.") var noPublish = false

    func run() throws {
        var options = try pipeline.runnerOptions()
        options.publish = !noPublish
        let dag = URL(fileURLWithPath: pipeline.dag).standardizedFileURL.path
        do {
            for job in try SlurmSubmitter.submit(options: options, dagPath: dag, script: script, sbatch: sbatch) {
                print("\(job.stage) \(job.id)\(job.after.isEmpty ? "" : " after " + job.after.joined(separator: ","))")
            }
        } catch let error as PipelineError {
            FileHandle.standardError.write(Data("mosaic pipeline submit: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// `mosaic publish`: publish a completed night, verify, or roll back.
struct Publish: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish a night whose stages all succeeded, verify the published one, or roll back.",
        discussion: """
            Publishing writes the night's MANIFEST.json (every file of every stage's outputs: size, \
            rows, checksum; each stage's command) and swaps <root>/current atomically. --rollback \
            points current at the night published before it (after verifying its checksums). \
            --verify recomputes the checksums of the published night. `mosaic pipeline run` \
            publishes by itself; this command is for Slurm's last job and for operators.
            """)

    @OptionGroup var pipeline: PipelineOptions
    @Flag(help: "Point current back at the previously published night.") var rollback = false
    @Flag(help: "Verify the published night's files against its manifest's checksums.") var verify = false
    @Option(help: "Published nights kept; older ones are deleted.") var keep = 3

    func run() throws {
        let root = URL(fileURLWithPath: pipeline.root).standardizedFileURL
        let say = { (s: String) in FileHandle.standardError.write(Data((s + "\n").utf8)) }
        do {
            if rollback {
                let (from, to) = try NightPublisher.rollback(root: root)
                say("publish: rolled back from night \(from) to \(to)")
            } else if verify {
                let run = try PublishedRun.open(root: root)
                try run.verifyChecksums()
                say(
                    "publish: night \(run.manifest.runID): \(run.manifest.artifacts.reduce(0) { $0 + $1.files.count }) files match their checksums"
                )
            } else {
                let options = try pipeline.runnerOptions()
                let plan = try options.dag.plan(variables: options.variables)
                let state = try PipelineState.read(run: options.run, night: options.night)
                try NightPublisher.publish(
                    root: root, night: options.night, plan: plan, state: state, keep: keep, say: say)
            }
        } catch {
            say("mosaic publish: \(error)")
            throw ExitCode(1)
        }
    }
}

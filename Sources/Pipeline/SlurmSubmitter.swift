import Foundation

/// Submits a night to Slurm: one `sbatch` job per stage (the stage's ranks, time and memory as
/// its resources), each held with `--dependency=afterok:` on the jobs of the stages it depends
/// on, and a last job that publishes the night once all of them succeeded. Every job runs
/// `script` (Cluster/slurm/stage.sbatch), which calls `mosaic pipeline run --only STAGE` (or
/// `mosaic publish`) inside its allocation, so variables and skipping work as they do locally.
public enum SlurmSubmitter {
    /// One submitted job.
    public struct Job: Equatable, Sendable {
        public var stage: String
        public var id: String
        public var after: [String]
    }

    /// Submits the stages of `options` (honouring `only`/`from`) and the publish job; returns
    /// the jobs in submission order. `sbatch` is the program to call (a path or a name).
    public static func submit(
        options: PipelineRunner.Options, dagPath: String, script: String, sbatch: String = "sbatch"
    ) throws -> [Job] {
        let plan = try options.dag.plan(variables: options.variables)
        let stages = try plan.selected(only: options.only, from: options.from)
        let logs = options.run.appendingPathComponent(".pipeline/logs").path
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        var ids: [String: String] = [:]
        var jobs: [Job] = []
        let sets = options.overrides.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";")
        func submitOne(name: String, ranks: Int, minutes: Int, memory: String?, after: [String], stage: String)
            throws -> String
        {
            var args = [
                "--parsable", "--job-name=mosaic-\(name)", "--ntasks=\(ranks)", "--time=\(minutes)",
                "--output=\(logs)/\(name).slurm-%j.out",
                "--export=ALL,MOSAIC_DAG=\(dagPath),MOSAIC_ROOT=\(options.root.path),MOSAIC_NIGHT=\(options.night),"
                    + "MOSAIC_STAGE=\(stage),MOSAIC_RANKS=\(ranks),MOSAIC=\(options.executable),MOSAIC_SET=\(sets)",
            ]
            if let memory { args.append("--mem=\(memory)") }
            if !after.isEmpty {
                args += ["--dependency=afterok:\(after.joined(separator: ":"))", "--kill-on-invalid-dep=yes"]
            }
            let process = Process()
            process.executableURL = URL(
                fileURLWithPath: sbatch.contains("/") ? sbatch : (StageProcess.which(sbatch) ?? sbatch))
            process.arguments = args + [script]
            let pipe = Pipe(), errors = Pipe()
            process.standardOutput = pipe
            process.standardError = errors
            do { try process.run() } catch {
                throw PipelineError(
                    "cannot run \(sbatch) (\(error)); is Slurm installed? Cluster/slurm/local-cluster.sh up")
            }
            let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let err = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            let id = out.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
            guard process.terminationStatus == 0, !id.isEmpty, id.allSatisfy(\.isNumber) else {
                throw PipelineError(
                    "sbatch refused stage \(name): \(err.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
            return id
        }
        for s in stages {
            let after = s.dependencies.compactMap { ids[$0] }
            let id = try submitOne(
                name: s.spec.name, ranks: s.spec.ranks, minutes: s.spec.timeMinutes, memory: s.spec.memory,
                after: after, stage: s.spec.name)
            ids[s.spec.name] = id
            jobs.append(Job(stage: s.spec.name, id: id, after: after))
        }
        if options.publish {
            let after = jobs.map(\.id)
            let id = try submitOne(name: "publish", ranks: 1, minutes: 30, memory: nil, after: after, stage: "")
            jobs.append(Job(stage: "publish", id: id, after: after))
        }
        return jobs
    }
}

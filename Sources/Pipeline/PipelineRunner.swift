import Foundation

/// Runs a night of a `PipelineDAG` on this machine: every stage in dependency order under its
/// launcher (`mpirun -np RANKS` by default), skipping a stage whose command, inputs and outputs
/// are unchanged since it last succeeded, resuming a failed stage from its checkpoint, and
/// publishing the night when every stage has succeeded.
///
/// Layout under `root`:
/// ```
/// root/runs/<night>/            every stage's outputs (${RUN}), the night's bundle
/// root/runs/<night>/.pipeline/  state.json and logs/<stage>.log
/// root/current -> runs/<night>  the published night (`NightPublisher`)
/// ```
public struct PipelineRunner {
    /// What to run and how.
    public struct Options {
        public var dag: PipelineDAG
        /// The pipeline's root folder.
        public var root: URL
        /// The night's id (its folder under `root/runs`).
        public var night: String
        /// `--set NAME=value` overrides of the DAG's variables.
        public var overrides: [String: String] = [:]
        public var only: String? = nil
        public var from: String? = nil
        /// The launcher's words before the executable; `{ranks}` becomes the stage's rank count.
        /// Empty: the executable runs directly (one rank).
        public var launcher: [String] = ["mpirun", "-np", "{ranks}"]
        /// The `mosaic` executable the stages run.
        public var executable: String
        /// Publish when every stage of the DAG has succeeded.
        public var publish = true
        /// Published nights kept (older ones are deleted).
        public var keep = 3
        /// Do not copy the stages' output to stderr (it still goes to their logs).
        public var quiet = false

        public init(dag: PipelineDAG, root: URL, night: String, executable: String) {
            self.dag = dag
            self.root = root
            self.night = night
            self.executable = executable
        }

        /// The night's folder.
        public var run: URL { root.appendingPathComponent("runs").appendingPathComponent(night) }

        /// The DAG's variables for this night.
        public var variables: Variables {
            var v = dag.defaults.merging(overrides) { _, new in new }
            v["RUN"] = run.path
            v["NIGHT"] = night
            v["ROOT"] = root.path
            return Variables(v)
        }
    }

    public let options: Options
    /// Progress and results, one line each (rank 0's log; the stages' output is separate).
    public let say: (String) -> Void

    public init(options: Options, say: @escaping (String) -> Void) {
        self.options = options
        self.say = say
    }

    /// What the runner did with each stage.
    public enum Action: Equatable, Sendable { case skipped, ran, resumed }

    /// The plan as the runner would run it now: each stage, and whether it is up to date.
    public func dryRun() throws -> [(stage: PlannedStage, command: String, upToDate: Bool)] {
        let plan = try options.dag.plan(variables: options.variables)
        let state = try PipelineState.read(run: options.run, night: options.night)
        return try plan.selected(only: options.only, from: options.from).map { s in
            let command = try commandLine(s, keepUnknown: true).joined(separator: " ")
            return (s, command, (try? isUpToDate(s, state: state)) ?? false)
        }
    }

    /// Runs the selected stages; publishes when the whole DAG is done. Throws on the first stage
    /// that fails, naming it (the state file records it; a rerun resumes there).
    @discardableResult
    public func run() throws -> [String: Action] {
        let plan = try options.dag.plan(variables: options.variables)
        let selected = try plan.selected(only: options.only, from: options.from)
        var state = try PipelineState.read(run: options.run, night: options.night)
        try FileManager.default.createDirectory(at: options.run, withIntermediateDirectories: true)
        let previous = try? PipelineState.read(
            run: options.root.appendingPathComponent(NightPublisher.currentLink).resolvingSymlinksInPath(),
            night: "")
        var actions: [String: Action] = [:]
        let t0 = Date()
        for (i, stage) in selected.enumerated() {
            let name = stage.spec.name
            if try isUpToDate(stage, state: state) {
                say("pipeline: [\(i + 1)/\(selected.count)] \(name): up to date, skipped")
                actions[name] = .skipped
                continue
            }
            let remaining = selected[i...].compactMap { previous?.stages[$0.spec.name]?.seconds }.reduce(0, +)
            let eta = remaining > 0 ? String(format: ", ETA %.0f s (last published night's times)", remaining) : ""
            say("pipeline: [\(i + 1)/\(selected.count)] \(name) on \(stage.spec.ranks) rank(s)\(eta)")
            actions[name] = try runStage(stage, state: &state)
        }
        say(
            String(
                format: "pipeline: night %@: %d stage(s) in %.1f s", options.night, selected.count,
                Date().timeIntervalSince(t0)))
        if options.publish {
            let everyStage = plan.stages.allSatisfy { state.stages[$0.spec.name]?.status == .done }
            let published = NightPublisher.history(root: options.root).last == options.night
            if everyStage && published && actions.values.allSatisfy({ $0 == .skipped }) {
                say("pipeline: night \(options.night) is already the published one; nothing changed")
            } else if everyStage {
                try NightPublisher.publish(
                    root: options.root, night: options.night, plan: plan, state: state, keep: options.keep, say: say)
            } else {
                say(
                    "pipeline: not published: stages \(plan.stages.filter { state.stages[$0.spec.name]?.status != .done }.map(\.spec.name).joined(separator: ", ")) have not run"
                )
            }
        }
        return actions
    }

    /// True when the stage last succeeded with the same command, and its inputs and outputs
    /// are as it left them.
    func isUpToDate(_ stage: PlannedStage, state: PipelineState) throws -> Bool {
        guard let last = state.stages[stage.spec.name], last.status == .done,
            let command = try? commandLine(stage).joined(separator: " "), command == last.command
        else { return false }
        return Fingerprint.of(stage.inputs) == last.inputs && Fingerprint.of(stage.outputs) == last.outputs
    }

    /// The stage's arguments after the launcher: the executable and its expanded command, with
    /// the variables of its `.env` inputs.
    func commandLine(_ stage: PlannedStage, keepUnknown: Bool = false) throws -> [String] {
        var variables = options.variables
        for input in stage.inputs where input.hasSuffix(".env") && FileManager.default.fileExists(atPath: input) {
            variables.values.merge(try Variables.readEnvFile(input)) { _, new in new }
        }
        let context = "\(stage.spec.file) (stage \(stage.spec.name))"
        let text = try variables.expand(stage.spec.command, context: context, keepUnknown: keepUnknown)
        return [options.executable] + (try Variables.splitArguments(text, context: context))
    }

    func runStage(_ stage: PlannedStage, state: inout PipelineState) throws -> Action {
        let spec = stage.spec
        for input in stage.inputs where !FileManager.default.fileExists(atPath: input) {
            throw PipelineError(
                "stage \(spec.name): input \(input) is missing (run the stages that write it: drop --only, or use --from)"
            )
        }
        var arguments = try commandLine(stage)
        let checkpoint = try spec.checkpoint.map { try options.variables.expand($0, context: spec.file) }
        let last = state.stages[spec.name]
        var resumed = false
        if let checkpoint, let resume = spec.resume, let last, last.status != .done,
            FileManager.default.fileExists(atPath: checkpoint)
        {
            arguments += try Variables.splitArguments(resume, context: spec.file)
            resumed = true
            say("pipeline: \(spec.name): resuming from its checkpoint \(checkpoint)")
        }
        try removeOutputs(stage.outputs, keeping: resumed ? checkpoint : nil)
        let launcher = options.launcher.map { $0.replacingOccurrences(of: "{ranks}", with: String(spec.ranks)) }
        var record = PipelineState.Stage(
            status: .running, command: try commandLine(stage).joined(separator: " "), ranks: spec.ranks,
            started: ISO8601DateFormatter().string(from: Date()), seconds: 0, inputs: Fingerprint.of(stage.inputs),
            outputs: "", message: nil, resumed: resumed, peakMiBPerRank: [])
        state.stages[spec.name] = record
        try state.write(run: options.run)
        let outcome = try StageProcess(
            arguments: launcher + arguments, executable: options.executable,
            logFile: options.run.appendingPathComponent(".pipeline/logs/\(spec.name).log"),
            timeLimit: TimeInterval(spec.timeMinutes * 60), quiet: options.quiet
        ).run()
        record.seconds = outcome.seconds
        record.peakMiBPerRank = outcome.peakMiBPerRank
        var failure: String? = nil
        if outcome.status != 0 || outcome.timedOut {
            failure = StageProcess.diagnose(stage: spec.name, outcome: outcome, timeLimitMinutes: spec.timeMinutes)
        } else if let missing = stage.outputs.first(where: { !FileManager.default.fileExists(atPath: $0) }) {
            failure = "stage \(spec.name) exited 0 but did not write \(missing)"
        }
        if let failure {
            record.status = .failed
            record.message = failure
            state.stages[spec.name] = record
            try state.write(run: options.run)
            let hint = spec.checkpoint != nil ? "; rerun to resume from its checkpoint" : "; rerun to retry it"
            throw PipelineError(failure + " (log: \(options.run.path)/.pipeline/logs/\(spec.name).log)" + hint)
        }
        record.status = .done
        record.outputs = Fingerprint.of(stage.outputs)
        state.stages[spec.name] = record
        try state.write(run: options.run)
        let memory = outcome.peakMiBPerRank.map { String(format: "%.0f", $0) }.joined(separator: ", ")
        say(
            String(
                format: "pipeline: %@ done in %.1f s%@, peak MiB per rank: %@", spec.name, outcome.seconds,
                resumed ? " (resumed)" : "", memory.isEmpty ? "-" : memory))
        return resumed ? .resumed : .ran
    }

    /// Removes a stage's outputs before it runs (so a stage never sees its own half-written
    /// files), except `keeping` (its checkpoint when it resumes) and the folders holding it.
    func removeOutputs(_ outputs: [String], keeping: String?) throws {
        let fm = FileManager.default
        func remove(_ path: String) throws {
            guard fm.fileExists(atPath: path) || (try? fm.destinationOfSymbolicLink(atPath: path)) != nil else {
                return
            }
            if let keeping, keeping == path { return }
            if let keeping, keeping.hasPrefix(path + "/") {
                for child in try fm.contentsOfDirectory(atPath: path) { try remove(path + "/" + child) }
                return
            }
            try fm.removeItem(atPath: path)
        }
        for o in outputs { try remove(o) }
    }
}

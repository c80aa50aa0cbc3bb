import Foundation
import Testing

@testable import Pipeline

/// Stage specs, the DAG's edges and order, variables and argument splitting.
@Suite struct PipelineSpecTests {
    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    @Test func specParsesQuotedValuesAndNamesBadLines() throws {
        let spec = try StageSpec.parse(
            """
            # a comment
            NAME=train
            RANKS=4
            COMMAND="retrieval train --out ${RUN}/m"
            INPUTS="${RUN}/a ${RUN}/b"
            OUTPUTS=${RUN}/m
            TIME=30
            CHECKPOINT="${RUN}/m/c.h5"
            RESUME="--resume"
            """, file: "t.job")
        #expect(spec.name == "train" && spec.ranks == 4 && spec.timeMinutes == 30)
        #expect(spec.command == "retrieval train --out ${RUN}/m")
        #expect(spec.inputs == ["${RUN}/a", "${RUN}/b"] && spec.outputs == ["${RUN}/m"])
        #expect(spec.checkpoint == "${RUN}/m/c.h5" && spec.resume == "--resume")
        #expect(throws: PipelineError.self) { try StageSpec.parse("NAME=a\nRANKZ=2", file: "t.job") }
        do {
            _ = try StageSpec.parse("NAME=a\nRANKS=2\nCOLOUR=red\n", file: "t.job")
            Issue.record("an unknown key was accepted")
        } catch let e as PipelineError {
            #expect(e.message.contains("t.job:3") && e.message.contains("COLOUR"))
        }
        do {
            _ = try StageSpec.parse("NAME=a\nRANKS=0\nCOMMAND=x\nTIME=1", file: "t.job")
            Issue.record("RANKS=0 was accepted")
        } catch let e as PipelineError { #expect(e.message.contains("RANKS=0")) }
    }

    @Test func variablesExpandAndUnknownOnesAreNamed() throws {
        let v = Variables(["RUN": "/r", "N": "3"])
        #expect(try v.expand("a ${RUN}/x ${N}", context: "c") == "a /r/x 3")
        #expect(try v.expand("${CUT}", context: "c", keepUnknown: true) == "${CUT}")
        do {
            _ = try v.expand("--before ${CUT}", context: "s.job (stage s)")
            Issue.record("an unknown variable was expanded")
        } catch let e as PipelineError { #expect(e.message.contains("${CUT}") && e.message.contains("s.job")) }
        #expect(
            try Variables.splitArguments(#"a "b c" 'd e'  f"#, context: "c") == ["a", "b c", "d e", "f"])
        #expect(throws: PipelineError.self) { try Variables.splitArguments(#"a "b"#, context: "c") }
    }

    @Test func nightlyDAGEdgesComeFromInputsAndOutputs() throws {
        let dag = try PipelineDAG.read(Self.repository.appendingPathComponent("Jobs/nightly.dag").path)
        let plan = try dag.plan(
            variables: Variables(dag.defaults.merging(["RUN": "/n", "NIGHT": "x", "ROOT": "/"]) { a, _ in a }))
        let names = plan.stages.map(\.spec.name)
        func position(_ n: String) -> Int { names.firstIndex(of: n)! }
        let deps = Dictionary(uniqueKeysWithValues: plan.stages.map { ($0.spec.name, Set($0.dependencies)) })
        #expect(deps["generate"] == [])
        #expect(deps["feed-rank"]!.isSuperset(of: ["feed-candidates", "ranker-train", "pinsage-embed"]))
        #expect(deps["graph-build"] == ["generate", "cuts"])
        for s in plan.stages {
            for d in s.dependencies { #expect(position(d) < position(s.spec.name), "\(d) before \(s.spec.name)") }
        }
        let from = try plan.selected(from: "retrieval-train").map(\.spec.name)
        #expect(
            from == [
                "retrieval-train", "retrieval-embed-users", "feed-candidates", "ranker-train", "feed-rank", "evaluate",
                "monitor",
            ])
        #expect(try plan.selected(only: "cuts").map(\.spec.name) == ["cuts"])
        #expect(throws: PipelineError.self) { try plan.selected(only: "nope") }
    }

    @Test func cyclesAndTwoWritersOfOnePathAreRefused() throws {
        func stage(_ n: String, _ ins: [String], _ outs: [String]) -> StageSpec {
            StageSpec(name: n, ranks: 1, command: "x", inputs: ins, outputs: outs, file: "\(n).job")
        }
        let cycle = PipelineDAG(
            file: "d", defaults: [:], stages: [stage("a", ["/b"], ["/a"]), stage("b", ["/a"], ["/b"])])
        do {
            _ = try cycle.plan(variables: Variables())
            Issue.record("a cycle was planned")
        } catch let e as PipelineError { #expect(e.message.contains("cycle")) }
        let twice = PipelineDAG(file: "d", defaults: [:], stages: [stage("a", [], ["/o"]), stage("b", [], ["/o/"])])
        #expect(throws: PipelineError.self) { try twice.plan(variables: Variables()) }
    }

    @Test func failureDiagnosisNamesTheRankAndSignal() {
        let log = """
            progress 10%
            --------------------------------------------------------------------------
            mpirun noticed that process rank 1 with PID 4242 on node host exited on signal 9 (Killed).
            --------------------------------------------------------------------------
            """
        let outcome = StageProcess.Outcome(status: 137, timedOut: false, seconds: 1, peakMiBPerRank: [], log: log)
        let message = StageProcess.diagnose(stage: "retrieval-train", outcome: outcome, timeLimitMinutes: 5)
        #expect(message.contains("retrieval-train") && message.contains("rank 1") && message.contains("signal 9"))
        let error = StageProcess.Outcome(
            status: 1, timedOut: false, seconds: 1, peakMiBPerRank: [],
            log: "mosaic (rank 0): error: /x/world: no published run\n")
        #expect(StageProcess.diagnose(stage: "s", outcome: error, timeLimitMinutes: 5).contains("no published run"))
    }
}

import Artifacts
import Foundation
import Testing
import _TestSupport

@testable import Pipeline

/// The runner on stages that are shell one-liners: skipping, rerunning what changed, a failure
/// that publishes nothing, resuming from a checkpoint, publishing with checksums, rollback.
@Suite struct PipelineRunnerTests {
    /// A DAG of three stages: a → b, and c (checkpointed; fails while ROOT/fail exists).
    static func makeDAG(in dir: URL) throws -> PipelineDAG {
        let specs = [
            "a": """
            NAME=a
            RANKS=1
            COMMAND="-c 'echo ${N} > ${RUN}/a.txt'"
            OUTPUTS="${RUN}/a.txt"
            TIME=1
            """,
            "b": """
            NAME=b
            RANKS=1
            COMMAND="-c 'cat ${RUN}/a.txt > ${RUN}/b.txt; echo B >> ${RUN}/b.txt'"
            INPUTS="${RUN}/a.txt"
            OUTPUTS="${RUN}/b.txt"
            TIME=1
            """,
            "c": """
            NAME=c
            RANKS=1
            COMMAND="-c 'mkdir -p ${RUN}/c; if [ x$1 = x--resume ]; then cp ${RUN}/c/ck ${RUN}/c/out; exit 0; fi; echo half > ${RUN}/c/ck; [ -f ${ROOT}/fail ] && exit 3; echo full > ${RUN}/c/out' c"
            OUTPUTS="${RUN}/c"
            TIME=1
            CHECKPOINT="${RUN}/c/ck"
            RESUME="--resume"
            """,
        ]
        for (name, text) in specs {
            try text.write(to: dir.appendingPathComponent("\(name).job"), atomically: true, encoding: .utf8)
        }
        let dag = dir.appendingPathComponent("t.dag")
        try "set N=1\nstage a.job\nstage b.job\nstage c.job\n".write(to: dag, atomically: true, encoding: .utf8)
        return try PipelineDAG.read(dag.path)
    }

    func runner(_ dag: PipelineDAG, root: URL, night: String, n: String = "1", keep: Int = 3) -> PipelineRunner {
        var o = PipelineRunner.Options(dag: dag, root: root, night: night, executable: "/bin/sh")
        o.launcher = []
        o.overrides = ["N": n]
        o.quiet = true
        o.keep = keep
        return PipelineRunner(options: o) { _ in }
    }

    @Test func skipsWhatIsUpToDateAndRerunsWhatChanged() throws {
        let dir = try MPIRun.temporaryDirectory("pipeline-skip")
        let dag = try Self.makeDAG(in: dir)
        let root = dir.appendingPathComponent("root")
        let first = try runner(dag, root: root, night: "n1").run()
        #expect(first == ["a": .ran, "b": .ran, "c": .ran])
        #expect(try String(contentsOf: root.appendingPathComponent("current/b.txt"), encoding: .utf8) == "1\nB\n")
        #expect(try runner(dag, root: root, night: "n1").run() == ["a": .skipped, "b": .skipped, "c": .skipped])
        // A changed variable changes a's command: a and its dependant b rerun, c does not.
        #expect(try runner(dag, root: root, night: "n1", n: "2").run() == ["a": .ran, "b": .ran, "c": .skipped])
        // An output changed behind the runner's back reruns its stage.
        try "x".write(to: root.appendingPathComponent("runs/n1/c/out"), atomically: true, encoding: .utf8)
        #expect(try runner(dag, root: root, night: "n1", n: "2").run()["c"] == .ran)
        let plan = try runner(dag, root: root, night: "n1", n: "2").dryRun()
        #expect(plan.allSatisfy { $0.upToDate })
    }

    @Test func aFailedStagePublishesNothingAndResumesFromItsCheckpoint() throws {
        let dir = try MPIRun.temporaryDirectory("pipeline-resume")
        let dag = try Self.makeDAG(in: dir)
        let root = dir.appendingPathComponent("root")
        try runner(dag, root: root, night: "n1").run()
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        #expect(FileManager.default.createFile(atPath: root.appendingPathComponent("fail").path, contents: Data()))
        do {
            try runner(dag, root: root, night: "n2").run()
            Issue.record("the failing stage did not stop the night")
        } catch let e as PipelineError {
            #expect(e.message.contains("stage c failed") && e.message.contains("exit status 3"))
        }
        let state = try PipelineState.read(run: root.appendingPathComponent("runs/n2"), night: "n2")
        #expect(state.stages["c"]?.status == .failed && state.stages["a"]?.status == .done)
        #expect(NightPublisher.history(root: root) == ["n1"])
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: root.appendingPathComponent("current").path)
                == "runs/n1")
        try FileManager.default.removeItem(at: root.appendingPathComponent("fail"))
        let rerun = try runner(dag, root: root, night: "n2").run()
        #expect(rerun == ["a": .skipped, "b": .skipped, "c": .resumed])
        #expect(try String(contentsOf: root.appendingPathComponent("current/c/out"), encoding: .utf8) == "half\n")
        #expect(NightPublisher.history(root: root) == ["n1", "n2"])
    }

    @Test func publishWritesChecksumsAndRollbackAndKeepWork() throws {
        let dir = try MPIRun.temporaryDirectory("pipeline-publish")
        let dag = try Self.makeDAG(in: dir)
        let root = dir.appendingPathComponent("root")
        try runner(dag, root: root, night: "n1").run()
        try runner(dag, root: root, night: "n2", n: "7").run()
        let run = try PublishedRun.open(root: root)
        #expect(run.manifest.runID == "n2")
        #expect(Set(run.manifest.artifacts.map(\.name)) == ["a.txt", "b.txt", "c"])
        #expect(run.manifest.artifacts.allSatisfy { $0.files.allSatisfy { $0.checksum?.count == 16 } })
        #expect(run.manifest.config["stage.a"]?.contains("echo 7") == true)
        try run.verifyChecksums()
        #expect(try NightPublisher.rollback(root: root) == ("n2", "n1"))
        #expect(try PublishedRun.open(root: root).manifest.runID == "n1")
        #expect(throws: PipelineError.self) { try NightPublisher.rollback(root: root) }
        // Same size, other bytes: only the checksum sees it.
        try "9\n".write(to: root.appendingPathComponent("runs/n1/a.txt"), atomically: false, encoding: .utf8)
        #expect(throws: ArtifactError.self) { try PublishedRun.open(root: root).verifyChecksums() }
        try runner(dag, root: root, night: "n3", keep: 1).run()
        #expect(NightPublisher.history(root: root) == ["n3"])
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("runs/n1").path))
    }
}

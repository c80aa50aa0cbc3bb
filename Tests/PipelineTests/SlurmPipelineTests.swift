import Artifacts
import Foundation
import ProcessKit
import Testing
import _TestSupport

@testable import Pipeline

/// The nightly DAG submitted to a real one-node Slurm cluster (Cluster/slurm/local-cluster.sh):
/// one sbatch job per stage chained with afterok, a last job that publishes; the published
/// night is checked, and the daemons this test started are stopped.
@Suite(
    .serialized,
    .enabled(
        if: ChildProcess.which("sbatch") != nil && MPIRun.mpirunAvailable,
        "Slurm is not installed: `Cluster/slurm/local-cluster.sh install` installs it (.ci/run does)"))
struct SlurmPipelineTests {
    static let repository = PipelineSpecTests.repository

    @Test func theTinyNightRunsAsChainedSbatchJobsAndPublishes() async throws {
        let script = Self.repository.appendingPathComponent("Cluster/slurm/local-cluster.sh").path
        let wasUp = (try? ChildProcess.run("sinfo", ["-h"], timeout: 10))?.status == 0
        let up = try ChildProcess.run("bash", [script, "up"], timeout: 300)
        try #require(up.status == 0, "local-cluster.sh up failed: \(up.output)")
        defer { if !wasUp { _ = try? ChildProcess.run("bash", [script, "down"], timeout: 60) } }

        let root = try MPIRun.temporaryDirectory("slurm-night")
        let submit = try ChildProcess.run(
            MPIRun.mosaicPath,
            [
                "pipeline", "submit", Self.repository.appendingPathComponent("Jobs/nightly.dag").path, "--root",
                root.path, "--night", "s", "--mosaic", MPIRun.mosaicPath,
                "--script", Self.repository.appendingPathComponent("Cluster/slurm/stage.sbatch").path,
            ]
                + NightlyPipelineTests.tiny.map {
                    $0.replacingOccurrences(of: "TWO_TOWER_EPOCHS=40", with: "TWO_TOWER_EPOCHS=4")
                }
                .flatMap { ["--set", $0] }, timeout: 120)
        try #require(submit.status == 0, "\(submit.output)")
        let stageCount = try PipelineDAG.read(Self.repository.appendingPathComponent("Jobs/nightly.dag").path).stages
            .count
        let jobs = submit.stdout.split(separator: "\n").map { $0.split(separator: " ") }
        #expect(jobs.count == stageCount + 1 && jobs.last?.first == "publish", "\(submit.stdout)")
        #expect(jobs.first { $0.first == "feed-rank" }?.count == 4, "feed-rank waits for other jobs")
        let ids = jobs.compactMap { $0.count > 1 ? String($0[1]) : nil }
        // Wait until none of our jobs is queued or running.
        for _ in 0..<1200 {
            let q = try ChildProcess.run("squeue", ["-h", "-j", ids.joined(separator: ","), "-o", "%i"], timeout: 30)
            if q.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { break }
            try await Task.sleep(nanoseconds: 500_000_000)
        }
        let logs = root.appendingPathComponent("runs/s/.pipeline/logs")
        let slurmLogs =
            (try? FileManager.default.contentsOfDirectory(atPath: logs.path))?.filter { $0.contains(".slurm-") } ?? []
        #expect(slurmLogs.count == stageCount + 1, "one Slurm log per job: \(slurmLogs.sorted())")
        #expect(NightPublisher.history(root: root) == ["s"], "the publish job ran after every stage succeeded")
        let night = try PublishedRun.open(root: root)
        try night.verifyChecksums()
        #expect(night.manifest.artifact("feeds") != nil)
        let state = try PipelineState.read(run: night.directory, night: "s")
        #expect(state.stages.count == stageCount && state.stages.values.allSatisfy { $0.status == .done })
    }
}

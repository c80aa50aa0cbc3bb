import Artifacts
import Foundation
import Learning
import Testing
import _TestSupport

/// Parameters (dense and embedding table) of a checkpoint written by `mosaic selftest train`.
/// Runs `mosaic selftest train --steps <steps>` on `ranks` ranks once per variant (extra options),
/// expects each to succeed, and returns each run's checkpoint values.
func trainVariants(ranks: Int, steps: Int, dir: URL, _ variants: [[String]]) throws -> [(
    dense: [Float], table: [Float], step: Int64
)] {
    try variants.enumerated().map { v, extra in
        let out = dir.appendingPathComponent("\(ranks)-\(v).h5").path
        let r = try MPIRun.selftest(ranks: ranks, ["train", "--steps", "\(steps)", "--out", out] + extra)
        #expect(r.status == 0, "\(r.output)")
        #expect(r.stdout.contains("TRAIN OK ranks=\(ranks) step=\(steps)"), "\(r.output)")
        return try checkpointValues(out)
    }
}

func checkpointValues(_ path: String) throws -> (dense: [Float], table: [Float], step: Int64) {
    let file = try H5File(path: path, mode: .read)
    return (
        try file.root.read("parameters", as: Float.self),
        try file.root.group("tables").group("ids").read("values", as: Float.self),
        try file.root.intAttribute("step")
    )
}

func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

@Suite(
    "Data-parallel training under mpirun", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct DataParallelTrainingTests {
    @Test("1, 2 and 4 ranks on the same global batches give the same parameters after 12 steps")
    func rankCountIndependence() throws {
        let dir = try MPIRun.temporaryDirectory("learning-dp")
        var results: [Int: (dense: [Float], table: [Float], step: Int64)] = [:]
        for ranks in [1, 2, 4] {
            let out = dir.appendingPathComponent("final-\(ranks).h5").path
            let r = try MPIRun.selftest(ranks: ranks, ["train", "--steps", "12", "--out", out])
            #expect(r.status == 0, "\(r.output)")
            #expect(r.stdout.contains("TRAIN OK ranks=\(ranks) step=12"), "\(r.output)")
            results[ranks] = try checkpointValues(out)
        }
        let one = try #require(results[1])
        // The run really trained: parameters moved from their initial values (a 0-step run).
        #expect(one.step == 12)
        let initialPath = dir.appendingPathComponent("initial.h5").path
        let r0 = try MPIRun.selftest(ranks: 1, ["train", "--steps", "0", "--out", initialPath])
        #expect(r0.status == 0, "\(r0.output)")
        let initial = try checkpointValues(initialPath)
        #expect(maxDifference(initial.dense, one.dense) > 1e-3 && maxDifference(initial.table, one.table) > 1e-3)
        for ranks in [2, 4] {
            let other = try #require(results[ranks])
            let dd = maxDifference(one.dense, other.dense), dt = maxDifference(one.table, other.table)
            #expect(dd < 1e-4 && dt < 1e-4, "\(ranks) ranks differ from 1 rank by \(dd) (dense), \(dt) (table)")
        }
    }

    @Test(
        "a run stopped after step 5 and resumed equals an uninterrupted run; 2-rank checkpoints resume on 1 and 4 ranks"
    )
    func resume() throws {
        let dir = try MPIRun.temporaryDirectory("learning-resume")
        let full = dir.appendingPathComponent("full.h5").path
        var r = try MPIRun.selftest(ranks: 2, ["train", "--steps", "10", "--out", full])
        #expect(r.status == 0, "\(r.output)")
        let reference = try checkpointValues(full)

        let ckpt = dir.appendingPathComponent("ckpt.h5").path
        r = try MPIRun.selftest(
            ranks: 2,
            [
                "train", "--steps", "10", "--out", dir.appendingPathComponent("unused.h5").path,
                "--checkpoint", ckpt, "--checkpoint-every", "5", "--stop-after", "5",
            ])
        #expect(r.status == 0 && r.stdout.contains("TRAIN STOPPED ranks=2 step=5"), "\(r.output)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("unused.h5").path))
        #expect(try checkpointValues(ckpt).step == 5)

        for ranks in [2, 1, 4] {
            let out = dir.appendingPathComponent("resumed-\(ranks).h5").path
            r = try MPIRun.selftest(
                ranks: ranks, ["train", "--steps", "10", "--out", out, "--checkpoint", ckpt, "--resume"])
            #expect(r.status == 0 && r.stdout.contains("TRAIN OK ranks=\(ranks) step=10"), "\(r.output)")
            let resumed = try checkpointValues(out)
            if ranks == 2 {
                #expect(
                    resumed.dense == reference.dense && resumed.table == reference.table,
                    "same rank count: bit-identical")
                // Optimizer state and the trainer's RNG state are restored too.
                let a = try H5File(path: out, mode: .read).root
                let b = try H5File(path: full, mode: .read).root
                #expect(
                    try a.numericAttribute("rng_state", as: Int64.self)
                        == b.numericAttribute("rng_state", as: Int64.self))
                #expect(
                    try a.group("dense_optimizer").read("slot1", as: Float.self)
                        == b.group("dense_optimizer").read("slot1", as: Float.self))
            } else {
                #expect(
                    maxDifference(resumed.dense, reference.dense) < 1e-4
                        && maxDifference(resumed.table, reference.table) < 1e-4)
            }
        }
    }

    @Test("a replica that diverges is reported by rank", arguments: [2, 4])
    func divergence(ranks: Int) throws {
        let dir = try MPIRun.temporaryDirectory("learning-diverge")
        let r = try MPIRun.selftest(
            ranks: ranks,
            [
                "train", "--steps", "6", "--out", dir.appendingPathComponent("x.h5").path,
                "--corrupt-rank", "\(ranks - 1)", "--checksum-every", "2",
            ])
        #expect(r.status != 0)
        #expect(
            r.stderr.contains("parameters diverged at step 2: rank(s) \(ranks - 1) differ from rank 0"), "\(r.output)")
    }

    @Test("every optimizer trains identically on 1 and 2 ranks", arguments: ["sgd", "adamw", "adagrad"])
    func optimizers(name: String) throws {
        let dir = try MPIRun.temporaryDirectory("learning-opt")
        var values: [[Float]] = []
        for ranks in [1, 2] {
            let out = dir.appendingPathComponent("\(ranks).h5").path
            let r = try MPIRun.selftest(
                ranks: ranks, ["train", "--steps", "6", "--optimizer", name, "--out", out])
            #expect(r.status == 0, "\(r.output)")
            values.append(try checkpointValues(out).dense)
        }
        #expect(maxDifference(values[0], values[1]) < 1e-4)
    }

    @Test(
        "the exchange overlapped with backward gives the parameters of the blocking exchange",
        arguments: [2, 4])
    func overlappedExchange(ranks: Int) throws {
        let dir = try MPIRun.temporaryDirectory("learning-overlap")
        let results = try trainVariants(ranks: ranks, steps: 8, dir: dir, [[], ["--blocking-exchange"]])
        let dd = maxDifference(results[0].dense, results[1].dense)
        let dt = maxDifference(results[0].table, results[1].table)
        // Only the order of float sums may differ (the reduce-scatter's).
        #expect(dd < 1e-5 && dt < 1e-5, "overlapped vs blocking: \(dd) (dense), \(dt) (table)")
    }

    @Test(
        "updated values gathered during the next forward give the parameters of gathering inside the step, bit for bit",
        arguments: [2, 4])
    func gatherDuringForward(ranks: Int) throws {
        let dir = try MPIRun.temporaryDirectory("learning-gather")
        // Forward reads values still arriving at every step; the replica checksum (every 4th
        // step, or every step) reads them from outside the step, right after the gathers start.
        let variants = [
            ["--checksum-every", "4"], ["--checksum-every", "4", "--gather-after-step"], ["--checksum-every", "1"],
        ]
        let results = try trainVariants(ranks: ranks, steps: 9, dir: dir, variants)
        for v in 1..<variants.count {
            #expect(
                results[0].dense == results[v].dense && results[0].table == results[v].table, "\(variants[v])")
        }
    }

    @Test("loading a checkpoint into a different architecture fails naming the file")
    func wrongCheckpoint() throws {
        let dir = try MPIRun.temporaryDirectory("learning-bad")
        let path = dir.appendingPathComponent("bad.h5").path
        do {
            let file = try H5File(path: path, mode: .create)
            try file.root.setAttribute("format", "mosaic-learning-checkpoint-v1")
            try file.root.setAttribute("layout", "something else")
        }
        let r = try MPIRun.selftestSingleton([
            "train", "--steps", "2", "--out", dir.appendingPathComponent("o.h5").path,
            "--checkpoint", path, "--resume",
        ])
        #expect(r.status != 0)
        #expect(r.stderr.contains(path) && r.stderr.contains("layout"), "\(r.output)")
    }
}

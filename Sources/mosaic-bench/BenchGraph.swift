import Learning
import ArgumentParser
import Collective
import Foundation
import Graph
import Linalg
import Models
import ProcessKit

/// `mosaic-bench graph`: graph build edges/s, walk steps/s per rank and peak memory per rank
/// for 1, 2, 4 ranks on a generated graph, PinSage examples/s and pins embedded/s, beside a
/// numpy/scipy.sparse peer (Cluster/bench/graph_peer.py) on a graph of the same size.
struct BenchGraph: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract:
            "Graph build edges/s, walk steps/s per rank, peak memory per rank (1/2/4 ranks), PinSage throughput, vs numpy/scipy.",
        discussion: """
            Run WITHOUT mpirun from a release build (it launches `mpirun -np N` on this binary itself):
              Cluster/bench/graph.sh   (= .build/release/mosaic-bench graph --peer-python python3)
            The graph is generated in memory (SyntheticGraph: pin ⌊P·u⌋, board ⌊B·u²⌋ per edge, same for any rank \
            count); each rank generates its share of the edges, then `GraphBuilder.build` routes them (timed: \
            edges/s), then `RandomWalker.run` walks from every pin (timed: steps/s). PinSage is measured on a \
            smaller generated graph (--pinsage-edges) with random 32-wide content: training steps and bulk embedding.
            The peer builds CSR with scipy.sparse and walks all walkers at once with numpy (one process).
            """)

    @Option(help: "Edges of the walk/build graph.") var edges = 50_000_000
    @Option(help: "Pins (default edges / 10).") var pins: Int?
    @Option(help: "Boards (default edges / 50).") var boards: Int?
    @Option(help: "Walks per pin (`graph walks` defaults to 32).") var walks = 2
    @Option(help: "Restart (end) probability at each pin arrival (`graph walks` defaults to 0.3).") var restart = 0.5
    @Option(help: "Steps per walk at most (`graph walks` defaults to 20).") var maxSteps = 10
    @Option(help: "Importance neighbours kept per pin (`graph walks` defaults to 20).") var top = 10
    @Option(help: "Walk runs per rank count; the best is reported (the machine may be shared).") var repeats = 2
    @Option(help: "Start pins per rank walked together (`graph walks --batch-pins`).") var batchPins = 200_000
    @Option(help: "Walkers per cache tile of a pass (`graph walks --tile-walkers`).")
    var tileWalkers = WalkParameters().tileWalkers
    @Option(help: "Rank counts, comma-separated.") var ranks = "1,2,4"
    @Option(help: "Edges of the PinSage graph (0 = skip the PinSage rows).") var pinsageEdges = 1_000_000
    @Option(help: "Python with numpy and scipy for the peer (skipped when absent).") var peerPython: String?
    @Option(help: "Peer script.") var peerScript = "Cluster/bench/graph_peer.py"

    func run() throws {
        let p = pins ?? edges / 10, b = boards ?? edges / 50
        let rankCounts = try benchRankCounts(ranks)
        var table = "| measurement | ranks | figure | per rank | peak RSS per rank (MiB) |\n|---|---:|---:|---:|---|\n"
        var phaseTable =
            "| ranks | rounds | " + WalkPhases.names.joined(separator: " | ")
            + " |\n|---:|---:|" + String(repeating: "---:|", count: WalkPhases.names.count) + "\n"
        for n in rankCounts {
            let r = try benchRun(
                n,
                [
                    "graph-worker", "--edges", "\(edges)", "--pins", "\(p)", "--boards", "\(b)", "--walks",
                    "\(walks)", "--restart", "\(restart)", "--max-steps", "\(maxSteps)", "--top", "\(top)",
                    "--repeats", "\(repeats)", "--batch-pins", "\(batchPins)", "--tile-walkers", "\(tileWalkers)",
                ], executable: ChildProcess.currentExecutable)
            let f = try benchParse(r, prefix: "GRAPHBENCH")
            let eps = Double(f["edges"]!)! / Double(f["build_seconds"]!)!
            let sps = Double(f["steps"]!)! / Double(f["walk_seconds"]!)!
            let cps = Double(f["steps"]!)! / Double(f["walk_cpu_seconds"]!)!
            table += String(
                format: "| graph build (%@ edges in, %@ kept) | %d | %.0f edges/s | %.0f | %@ (after build) |\n",
                f["input_edges"]!, f["edges"]!, n, eps, eps / Double(n), f["build_rss"]!)
            table += String(
                format:
                    "| walks (%@ steps, %@ forwarded; best of %d) | %d | %.0f steps/s | %.0f (%.0f per CPU-second) | %@ |\n",
                f["steps"]!, f["forwarded"]!, repeats, n, sps, sps / Double(n), cps / Double(n), f["walk_rss"]!)
            let ph = try benchParse(r, prefix: "PHASES")
            phaseTable += "| \(n) | \(ph["rounds"] ?? "?") |"
            for name in WalkPhases.names {
                // "wall/cpu" per rank → the largest wall and CPU seconds over the ranks.
                let pairs = (ph[name] ?? "").split(separator: ",").map {
                    $0.split(separator: "/").compactMap { Double($0) }
                }
                let wall = pairs.map { $0.first ?? 0 }.max() ?? 0, cpu = pairs.map { $0.last ?? 0 }.max() ?? 0
                phaseTable += String(format: " %.3f / %.3f |", wall, cpu)
            }
            phaseTable += "\n"
            FileHandle.standardError.write(Data("bench graph: \(n) rank(s) done: \(f)\n".utf8))
        }
        for n in rankCounts.filter({ $0 <= 2 }) where pinsageEdges > 0 {
            let r = try benchRun(
                n,
                [
                    "graph-worker", "--edges", "\(pinsageEdges)", "--pins", "\(pinsageEdges / 10)", "--boards",
                    "\(pinsageEdges / 50)", "--walks", "4", "--pinsage",
                ], executable: ChildProcess.currentExecutable)
            let f = try benchParse(r, prefix: "GRAPHBENCH")
            table += String(
                format: "| PinSage train (K=2, T=10, d 32→64, 8×32 per step) | %d | %.0f examples/s | %.0f | %@ |\n", n,
                Double(f["train_examples_per_s"]!)!, Double(f["train_examples_per_s"]!)! / Double(n), f["walk_rss"]!)
            table += String(
                format: "| PinSage embed (%@ pins, each once per layer) | %d | %.0f pins/s | %.0f | |\n", f["pins"]!, n,
                Double(f["embed_pins_per_s"]!)!, Double(f["embed_pins_per_s"]!)! / Double(n))
        }
        if let py = peerPython {
            let r = try ChildProcess.run(
                "/usr/bin/env",
                [
                    py, peerScript, "--pins", "\(p)", "--boards", "\(b)", "--edges", "\(edges)", "--walks", "\(walks)",
                    "--restart", "\(restart)", "--max-steps", "\(maxSteps)", "--top", "\(top)",
                ])
            let f = try benchParse(r, prefix: "PEER")
            table += String(
                format: "| peer: scipy.sparse CSR build (%@ edges) | 1 | %.0f edges/s | | %@ |\n", f["edges"]!,
                Double(f["edges"]!)! / Double(f["build_seconds"]!)!, f["maxrss_mib"]!)
            table += String(
                format: "| peer: numpy vectorised walks + np.unique top-T (%@ steps) | 1 | %.0f steps/s | | |\n",
                f["steps"]!, Double(f["steps"]!)! / Double(f["walk_seconds"]!)!)
        }
        print(
            "Generated graph: \(edges) edges drawn, \(p) pins, \(b) boards; walks \(walks) per pin, restart \(restart), ≤ \(maxSteps) steps, top \(top).\n"
        )
        print(table, terminator: "")
        print(
            "\nWalk phases, seconds wall / CPU of the busiest rank (best run); exchange includes waiting for the other ranks:\n"
        )
        print(phaseTable, terminator: "")
    }
}

/// Hidden worker of `mosaic-bench graph` (runs under mpirun).
struct BenchGraphWorker: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "graph-worker", shouldDisplay: false)

    @Option var edges = 1_000_000
    @Option var pins = 100_000
    @Option var boards = 20_000
    @Option var walks = 2
    @Option var restart = 0.5
    @Option var maxSteps = 10
    @Option var top = 10
    @Option var repeats = 1
    @Option var batchPins = 200_000
    @Option var tileWalkers = WalkParameters().tileWalkers
    @Flag var pinsage = false

    func run() throws {
        Communicator.runJob { comm in
            let g = SyntheticGraph(pins: pins, boards: boards, edges: edges)
            let (ep, eb) = g.edges(g.share(rank: comm.rank, ranks: comm.size))
            try comm.barrier()
            let t0 = now()
            let (shard, stats) = try GraphBuilder.build(pins: ep, boards: eb, comm: comm)
            try comm.barrier()
            let build = now() - t0
            let buildRSS = try comm.peakMemoryPerRank()
            var params = WalkParameters(
                walksPerPin: walks, restartProbability: restart, maxSteps: maxSteps, topT: top, seed: 3,
                batchPins: batchPins)
            params.tileWalkers = tileWalkers
            // Best of --repeats runs (the machine is shared; the runs are identical).
            var walk = Double.infinity, walkCPU = Double.infinity
            var neighbors = ImportanceNeighbors(t: 0), ws = WalkStatistics()
            var phaseLine = ""
            for _ in 0..<max(1, repeats) {
                try comm.barrier()
                let t1 = now()
                let c1 = ProcessStats.cpuSeconds()
                (neighbors, ws) = try RandomWalker.run(shard, parameters: params, comm: comm)
                try comm.barrier()
                let seconds = now() - t1
                // Per-phase wall/CPU seconds of every rank (of the best run).
                let all = try comm.allgather(ws.phases.wall + ws.phases.cpu + [Double(ws.phases.bytesSent)])
                if seconds < walk {
                    let k = WalkPhases.names.count, w = 2 * k + 1
                    phaseLine = "PHASES rounds=\(ws.exchanges)"
                    for (j, name) in WalkPhases.names.enumerated() {
                        let ranks = (0..<comm.size).map {
                            String(format: "%.3f/%.3f", all[$0 * w + j], all[$0 * w + k + j])
                        }
                        phaseLine += " \(name)=" + ranks.joined(separator: ",")
                    }
                    phaseLine +=
                        " walker_bytes_sent="
                        + (0..<comm.size).map { String(Int(all[$0 * w + 2 * k])) }.joined(separator: ",")
                }
                walk = min(walk, seconds)
                // CPU seconds of the walks on the busiest rank: on a shared machine wall time also
                // counts the time the scheduler gave to other processes.
                walkCPU = min(walkCPU, try comm.allreduce(ProcessStats.cpuSeconds() - c1, op: .max))
            }
            var extra = ""
            if pinsage {
                // Random 32-wide content keyed by pin id.
                let d = 32
                var content = [Float]()
                content.reserveCapacity(shard.pins.count * d)
                for id in shard.pins.ids {
                    var r = RandomStream(seed: 8, index: UInt64(id))
                    for _ in 0..<d { content.append(Float(r.normal())) }
                }
                let store = try NodeStore(
                    comm: comm, dIn: d, t: 10, contentIDs: shard.pins.ids, content: content,
                    neighborPins: neighbors.pins, neighborIDs: neighbors.ids, neighborWeights: neighbors.weights)
                let model = PinSageModel<Float>(
                    config: PinSageConfig(dIn: d, dHidden: 64, dOut: 64, layers: 2), seed: 1)
                let trainer = try DataParallelTrainerFactory.make(model, comm)
                let sampler = try PinSageSampler(store: store, microBatches: 8, microBatchSize: 32, seed: 1)
                let steps = 10
                let t2 = now()
                for s in 0..<steps { try trainer(try sampler.batch(step: s, layers: 2, store: store)) }
                let train = now() - t2
                let t3 = now()
                _ = try PinSageEmbedder.embedAll(model: model, store: store)
                let embed = now() - t3
                let total = try comm.allreduce(store.ids.count)
                extra = String(
                    format: " train_examples_per_s=%.1f embed_pins_per_s=%.1f pins=%d", Double(steps * 8 * 32) / train,
                    Double(total) / embed, total)
            }
            let walkRSS = try comm.peakMemoryPerRank()
            if comm.isRoot {
                print(phaseLine)
                print(
                    String(
                        format:
                            "GRAPHBENCH input_edges=%d edges=%d build_seconds=%.3f walk_seconds=%.3f walk_cpu_seconds=%.3f steps=%d forwarded=%d build_rss=%@ walk_rss=%@%@",
                        edges, stats.edges, build, walk, walkCPU, ws.steps, ws.forwarded, buildRSS, walkRSS, extra))
            }
        }
    }
}

/// A training-step closure over the Learning data-parallel trainer (Adam, lr 3e-3).
enum DataParallelTrainerFactory {
    static func make(_ model: PinSageModel<Float>, _ comm: Communicator) throws -> (PinSageBatch) throws -> Void {
        var config = TrainerConfig()
        config.schedule = LearningRateSchedule(base: 3e-3)
        let trainer = try DataParallelTrainer(model: model, comm: comm, config: config)
        return { batch in _ = try trainer.step(batch, globalBatchSize: 8 * 32) }
    }
}

import ArgumentParser
import Artifacts
import Collective
import Foundation
import Graph
import ProcessKit
import Publishing

/// `mosaic graph walks`: random walks with restart → top-T importance neighbours per pin.
struct GraphWalks: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "walks",
        abstract: "Random walks with restart from every pin; writes the top-T importance neighbours per pin.",
        discussion: """
            Walks pin → board → pin. Walkers whose next node lives on another rank are sent there in batches \
            (alltoallv) until every walk ends. Each step's randomness is keyed by (seed, start pin, walk, step), \
            so the neighbours are identical for any rank count. Writes neighbors/part-RRRRR-of-SSSSS.h5 with \
            /neighbors/pin_ids (n), ids (n, T; −1 padded), weights (n, T; visit counts normalised to sum 1) and \
            counts (n, T); with --hard-count H also hard_ids (n, H; −1 padded): H pins at evenly spaced visit-count \
            ranks in --hard-ranks (a Monte-Carlo personalised PageRank band, hardest first) for PinSage's hard \
            negatives. A walker keeps stepping on its rank until it reaches a node owned elsewhere; the walkers of a \
            batch advance in lock-step passes (gather, table probe) so their cache misses overlap. \
            Prints `WALKS pins=… steps=… digest=…`.
            """)

    @Option(help: "Root folder of the graph run (from `mosaic graph build`).") var graph = "out/graph"
    @Option(help: "Graph run id (default: current).") var graphRun: String?
    @Option(help: "Root folder of walk runs to write.") var out = "out/walks"
    @Option(help: "Run id.") var runID = "walks"
    @Option(help: "Walks started from every pin.") var walks = 32
    @Option(help: "Probability that a walk ends after each arrival at a pin.") var restart = 0.3
    @Option(help: "Maximum edge traversals per walk.") var maxSteps = 20
    @Option(help: "Importance neighbours kept per pin.") var top = 20
    @Option(help: "Seed of the walker streams.") var seed: UInt64 = 1
    @Option(help: "Start pins per rank walked together (bounds the walkers in flight).") var batchPins = 4096
    @Option(
        help:
            "Walkers stepped together through one pass's loops (cache tiling: their records stay in L2 between the loops). Results do not depend on it."
    )
    var tileWalkers = WalkParameters().tileWalkers
    @Option(
        help:
            "Hard-negative band for PinSage: visit-count ranks LO:HI (0-based, most visited first) from which --hard-count pins per pin are kept (evenly spaced), written as /neighbors/hard_ids."
    )
    var hardRanks = "200:2000"
    @Option(help: "Pins of the hard-negative band kept per pin (0 = none).") var hardCount = 0

    func validate() throws {
        guard walks > 0, maxSteps > 0, top > 0, batchPins > 0, tileWalkers > 0 else {
            throw ValidationError("--walks, --max-steps, --top, --batch-pins, --tile-walkers must be > 0")
        }
        guard restart > 0, restart <= 1 else { throw ValidationError("--restart must be in (0, 1]") }
        guard hardCount >= 0, let band = hardBand, band.0 >= 0, band.1 > band.0 else {
            throw ValidationError("--hard-ranks must be LO:HI with 0 ≤ LO < HI, --hard-count ≥ 0")
        }
    }

    var hardBand: (Int, Int)? {
        let f = hardRanks.split(separator: ":").compactMap { Int($0) }
        return f.count == 2 ? (f[0], f[1]) : nil
    }

    var parameters: WalkParameters {
        var w = WalkParameters(
            walksPerPin: walks, restartProbability: restart, maxSteps: maxSteps, topT: top, seed: seed,
            batchPins: batchPins)
        w.tileWalkers = tileWalkers
        if hardCount > 0, let (lo, hi) = hardBand { (w.hardFrom, w.hardTo, w.hardCount) = (lo, hi, hardCount) }
        return w
    }

    func run() throws {
        Communicator.runJob { comm in
            let t0 = now()
            let shard = try GraphShard.load(root: URL(fileURLWithPath: graph), runID: graphRun, comm: comm)
            let tLoad = now() - t0
            let pinsTotal = try comm.allreduce(shard.pins.count)
            var progress = JobProgress(comm: comm, label: "walks")
            let t1 = now()
            let (neighbors, stats) = try RandomWalker.run(shard, parameters: parameters, comm: comm) { done, total in
                progress.update(done: done, total: total, items: done, unit: "batches")
            }
            let tWalk = now() - t1
            let writer = try RunWriter(
                root: URL(fileURLWithPath: out), runID: runID, producer: "mosaic graph walks",
                config: [
                    "graph": graph, "walks": "\(walks)", "restart": "\(restart)", "max_steps": "\(maxSteps)",
                    "top": "\(top)", "seed": "\(seed)",
                ], comm: comm)
            let path = try writer.shardPath(artifact: "neighbors")
            try neighbors.write(
                path: path, rank: comm.rank, ranks: comm.size, parameters: parameters, producer: "mosaic graph walks")
            try writer.record(artifact: "neighbors", path: path, rows: neighbors.pins.count)
            try writer.commit()
            let digest = try comm.allgather([neighbors.digest()]).reduce(0, &+)
            let memory = try comm.peakMemoryPerRank()
            comm.log(
                String(
                    format:
                        "graph walks: load %.2fs, walks %.2fs, %d steps (%.0f steps/s, %.0f per rank), %d forwarded in %d exchanges, peak MiB %@",
                    tLoad, tWalk, stats.steps, Double(stats.steps) / tWalk,
                    Double(stats.steps) / tWalk / Double(comm.size), stats.forwarded, stats.exchanges, memory))
            if comm.isRoot {
                print("WALKS pins=\(pinsTotal) steps=\(stats.steps) top=\(top) digest=\(String(digest, radix: 16))")
            }
        }
    }
}

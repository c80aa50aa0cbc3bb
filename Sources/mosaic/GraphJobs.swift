import ArgumentParser
import Artifacts
import Collective
import Foundation
import Graph
import ProcessKit
import Publishing

/// `mosaic graph …`: the sharded pin–board graph and its random walks.
struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Build the sharded bipartite pin–board graph and run distributed random walks on it.",
        subcommands: [GraphBuild.self, GraphWalks.self, GraphEvaluate.self])
}

/// `mosaic graph build`: dataset run → one CSR shard per rank.
struct GraphBuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build the bipartite pin–board graph (or item–user for datasets without boards) as CSR shards.",
        discussion: """
            Reads the saves of a dataset run (`mosaic generate`, `ingest` or `adapt`); without a `saves` entity \
            the save events give (item, user) edges, the user playing the board. Nodes are partitioned over the \
            ranks by a hash of their id (boards hashed as ~id); every rank writes graph/part-RRRRR-of-SSSSS.h5 \
            with groups /pins and /boards (ids, offsets, neighbors) and degree statistics as attributes. Pins of \
            the `pins` entity without saves become isolated nodes; a save whose pin is not in `pins` is an error \
            naming the file, row and field. Prints `GRAPH pins=… boards=… edges=… digest=…` (same for any rank count).
            """)

    @Option(help: "Root folder of the dataset run to read.") var data = "out/world"
    @Option(help: "Dataset run id (default: its current run).") var dataRun: String?
    @Option(help: "Root folder of graph runs to write.") var out = "out/graph"
    @Option(help: "Run id of the graph run.") var runID = "graph"
    @Option(help: "auto, pin-board or user-item (auto: pin-board when the dataset has saves).") var pairing = "auto"
    @Option(help: "Drop boards with more distinct pins than this (Pixie-style pruning); 0 keeps all.")
    var maxBoardDegree = 0
    @Option(help: "Leave out each user's last N saves (user-item graphs; 2 = leave-one-out validation and test).")
    var holdOut = 0

    func validate() throws {
        guard GraphPairing(rawValue: pairing) != nil else {
            throw ValidationError("--pairing must be auto, pin-board or user-item")
        }
        guard maxBoardDegree >= 0, holdOut >= 0 else {
            throw ValidationError("--max-board-degree and --hold-out must be ≥ 0")
        }
    }

    func run() throws {
        Communicator.runJob { comm in
            let t0 = now()
            let params = GraphBuildParameters(
                maxBoardDegree: maxBoardDegree > 0 ? maxBoardDegree : nil, holdOut: holdOut,
                pairing: GraphPairing(rawValue: pairing)!)
            let edges = try GraphBuilder.readEdges(
                root: URL(fileURLWithPath: data), runID: dataRun, parameters: params, comm: comm)
            try GraphBuilder.checkDangling(edges, comm: comm)
            let tRead = now() - t0
            let (shard, stats) = try GraphBuilder.build(
                pins: edges.pins, boards: edges.boards, isolated: edges.knownPins ?? [],
                maxBoardDegree: params.maxBoardDegree, comm: comm)
            guard stats.edges > 0 else {
                throw GraphError(
                    "\(data): no edges (no saves\(holdOut > 0 ? " left after --hold-out \(holdOut)" : ""))")
            }
            let writer = try RunWriter(
                root: URL(fileURLWithPath: out), runID: runID, producer: "mosaic graph build",
                config: [
                    "data": data, "pairing": edges.pairing.rawValue, "max_board_degree": "\(maxBoardDegree)",
                    "hold_out": "\(holdOut)",
                ], comm: comm)
            let path = try writer.shardPath(artifact: "graph")
            try shard.write(path: path, producer: "mosaic graph build", extra: ["pairing": edges.pairing.rawValue])
            try writer.record(artifact: "graph", path: path, rows: shard.pins.count)
            try writer.commit()
            let seconds = now() - t0
            let perRank = try comm.allgather([shard.pins.count]).map(String.init).joined(separator: ",")
            let memory = try comm.peakMemoryPerRank()
            comm.log(
                String(
                    format:
                        "graph build: read %.2fs, total %.2fs, %d edges (%.0f edges/s), pins per rank %@, peak MiB %@",
                    tRead, seconds, stats.edges, Double(stats.edges) / seconds,
                    perRank, memory))
            if comm.isRoot {
                print(
                    "GRAPH pairing=\(stats.pairing.isEmpty ? edges.pairing.rawValue : stats.pairing) pins=\(stats.pins) boards=\(stats.boards) edges=\(stats.edges) isolated=\(stats.isolatedPins) pruned_boards=\(stats.prunedBoards) max_pin_degree=\(stats.maxPinDegree) max_board_degree=\(stats.maxBoardDegree) digest=\(String(stats.digest, radix: 16))"
                )
            }
        }
    }
}

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

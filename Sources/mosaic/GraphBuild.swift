import ArgumentParser
import Artifacts
import Collective
import Foundation
import Graph
import ProcessKit
import Publishing

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
    @Option(
        help:
            "Keep only saves before this time (ms since the epoch): the graph of the history before an evaluation cut (`feed candidates --holdout-days` prints its cut)."
    )
    var beforeMs: Int64?

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
                pairing: GraphPairing(rawValue: pairing)!, beforeMs: beforeMs)
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
                    "hold_out": "\(holdOut)", "before_ms": beforeMs.map { "\($0)" } ?? "",
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

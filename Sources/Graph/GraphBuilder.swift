import Collective
import EventData
import Events
import Foundation

/// Which bipartite pair a dataset gives.
public enum GraphPairing: String, Sendable, CaseIterable {
    /// `saves` rows give (pin, board) edges; without a `saves` entity, falls back to `userItem`.
    case auto
    /// (pin, board) from `saves` (an error when the dataset has none).
    case pinBoard = "pin-board"
    /// (item, user) from `save` events: the user plays the board (Beauty, Amazon Games).
    case userItem = "user-item"
}

/// Parameters of `GraphBuilder.build`.
public struct GraphBuildParameters: Sendable {
    /// Boards with more distinct pins than this are dropped (Pixie prunes very general boards);
    /// nil keeps all.
    public var maxBoardDegree: Int?
    /// Drop each user's last `holdOut` saves (user-item graphs; leave-one-out evaluation keeps
    /// the validation and test items out of the graph with 2).
    public var holdOut: Int
    public var pairing: GraphPairing
    /// Keep only saves strictly before this time (ms since the epoch): a graph of the history
    /// before an evaluation cut. Nil keeps every save.
    public var beforeMs: Int64?

    public init(maxBoardDegree: Int? = nil, holdOut: Int = 0, pairing: GraphPairing = .auto, beforeMs: Int64? = nil) {
        self.maxBoardDegree = maxBoardDegree
        self.holdOut = holdOut
        self.pairing = pairing
        self.beforeMs = beforeMs
    }
}

/// Global figures of a built graph (equal on every rank).
public struct GraphStatistics: Sendable {
    public var pins = 0, boards = 0, edges = 0, isolatedPins = 0, prunedBoards = 0, prunedEdges = 0
    public var maxPinDegree = 0, maxBoardDegree = 0
    /// Order-independent digest of nodes and edges (identical for any rank count).
    public var digest: UInt64 = 0
    /// Which pairing was used (`pin-board` or `user-item`).
    public var pairing = ""
}

/// Builds the sharded bipartite graph: edges are routed to the board's owner (deduplicated,
/// pruned by board degree), then to the pin's owner; each rank ends with CSR for the pins and
/// the boards it owns. Memory per rank is proportional to its edges.
public enum GraphBuilder {
    /// Edge lists read from this rank's shards of a dataset run.
    public struct EdgeList: Sendable {
        public var pins: [Int64] = []
        public var boards: [Int64] = []
        /// Pin ids of the `pins` entity read by this rank (nil when the run has none).
        public var knownPins: [Int64]? = nil
        /// Where each edge came from, for error messages: (file, 1-based data row) per edge.
        public var files: [String] = []
        public var fileIndex: [Int32] = []
        public var rows: [Int32] = []
        public var pairing: GraphPairing = .pinBoard
        public init() {}
    }

    /// Collective: reads this rank's shards of the dataset at `root` and returns its edges.
    public static func readEdges(root: URL, runID: String? = nil, parameters: GraphBuildParameters, comm: Communicator)
        throws -> EdgeList
    {
        let reader = try DatasetReader(root: root, runID: runID)
        var out = EdgeList()
        let hasSaves = reader.entities.contains("saves")
        var pairing = parameters.pairing
        if pairing == .auto { pairing = hasSaves ? .pinBoard : .userItem }
        if pairing == .pinBoard && !hasSaves {
            throw GraphError(
                "\(reader.run.directory.path): pairing pin-board needs a 'saves' entity (has: \(reader.entities.joined(separator: ", ")))"
            )
        }
        out.pairing = pairing
        if reader.entities.contains("pins") {
            var known: [Int64] = []
            for path in try reader.myShards("pins", comm: comm) {
                known += try DatasetReader.readShard(path, entity: "pins").i64("pin_id")
            }
            out.knownPins = known
        }
        if pairing == .pinBoard {
            for path in try reader.myShards("saves", comm: comm) {
                let t = try DatasetReader.readShard(path, entity: "saves")
                let f = Int32(out.files.count)
                out.files.append(path)
                let pins = t.i64("pin_id"), boards = t.i64("board_id"), times = t.i64("saved_at_ms")
                for i in 0..<t.count where times[i] < (parameters.beforeMs ?? .max) {
                    out.pins.append(pins[i])
                    out.boards.append(boards[i])
                    out.fileIndex.append(f)
                    out.rows.append(Int32(i + 1))
                }
            }
        } else {
            let save = EventType.save.rawValue
            for path in try reader.myShards("events", comm: comm) {
                let t = try DatasetReader.readShard(path, entity: "events")
                let f = Int32(out.files.count)
                out.files.append(path)
                let users = t.i64("user_id"), items = t.i64("pin_id"), ts = t.i64("timestamp_ms")
                let types = t.uint8["event_type"]!
                var byUser: [Int64: [Int]] = [:]
                for i in 0..<t.count where types[i] == save && ts[i] < (parameters.beforeMs ?? .max) {
                    byUser[users[i], default: []].append(i)
                }
                for u in byUser.keys.sorted() {
                    var rows = byUser[u]!
                    rows.sort { (ts[$0], $0) < (ts[$1], $1) }
                    for i in rows.dropLast(parameters.holdOut) {
                        out.pins.append(items[i])
                        out.boards.append(u)
                        out.fileIndex.append(f)
                        out.rows.append(Int32(i + 1))
                    }
                }
            }
        }
        return out
    }

    /// Collective: checks that every edge's pin exists in the `pins` entity (when the run has
    /// one), asking each pin's owner. Throws naming the file, row and field of the first
    /// dangling pin on this rank.
    public static func checkDangling(_ edges: EdgeList, comm: Communicator) throws {
        guard let known = try agreeKnown(edges, comm: comm) else { return }
        let p = comm.size
        let (mine, _) = try routeOne(known, dest: known.map { GraphPartition.pinOwner($0, ranks: p) }, comm: comm)
        let set = Set(mine)
        let found = try askOwners(keys: edges.pins, payload: [Int64](repeating: 0, count: edges.pins.count), comm: comm)
        { keys, _ in
            keys.map { set.contains($0) ? 1 : 0 }
        }
        if let i = found.firstIndex(of: 0) {
            let field = edges.pairing == .pinBoard ? "pin_id" : "pin_id (event_type save)"
            throw GraphError(
                "\(edges.files[Int(edges.fileIndex[i])]) row \(edges.rows[i]) field \(field): dangling id \(edges.pins[i]) is not in the pins entity"
            )
        }
    }

    private static func agreeKnown(_ edges: EdgeList, comm: Communicator) throws -> [Int64]? {
        let has = try comm.allreduce(edges.knownPins == nil ? 0 : 1, op: .max)
        return has == 1 ? (edges.knownPins ?? []) : nil
    }

    /// Collective: builds this rank's shard from edges held anywhere (`pins[i]`–`boards[i]`) and
    /// pins without edges (`isolated`, any rank). Duplicate edges are merged.
    public static func build(
        pins: [Int64], boards: [Int64], isolated: [Int64] = [], maxBoardDegree: Int? = nil, comm: Communicator
    ) throws -> (GraphShard, GraphStatistics) {
        precondition(pins.count == boards.count)
        let p = comm.size
        // 1. Edges to the board's owner; board side CSR, pruned.
        let (bp, bb) = try routePairs(
            pins, boards, dest: boards.map { GraphPartition.boardOwner($0, ranks: p) }, comm: comm)
        var boardSide = CSR.from(source: consume bb, target: consume bp)
        var prunedBoards = 0, prunedEdges = 0
        if let cap = maxBoardDegree {
            var kept = CSR()
            for i in 0..<boardSide.count {
                let d = boardSide.degree(i)
                if d > cap {
                    prunedBoards += 1
                    prunedEdges += d
                    continue
                }
                kept.ids.append(boardSide.ids[i])
                kept.neighbors.append(
                    contentsOf: boardSide.neighbors[Int(boardSide.offsets[i])..<Int(boardSide.offsets[i + 1])])
                kept.offsets.append(Int64(kept.neighbors.count))
            }
            boardSide = kept
        }
        // 2. Surviving edges to the pin's owner; pin side CSR with the isolated pins.
        var ep = [Int64](), eb = [Int64]()
        ep.reserveCapacity(boardSide.edgeCount)
        eb.reserveCapacity(boardSide.edgeCount)
        for i in 0..<boardSide.count {
            for k in Int(boardSide.offsets[i])..<Int(boardSide.offsets[i + 1]) {
                ep.append(boardSide.neighbors[k])
                eb.append(boardSide.ids[i])
            }
        }
        let (pp, pb) = try routePairs(ep, eb, dest: ep.map { GraphPartition.pinOwner($0, ranks: p) }, comm: comm)
        ep = []; eb = []
        let (iso, _) = try routeOne(isolated, dest: isolated.map { GraphPartition.pinOwner($0, ranks: p) }, comm: comm)
        let pinSide = CSR.from(source: consume pp, target: consume pb, isolated: iso)
        let shard = GraphShard(pins: pinSide, boards: boardSide, rank: comm.rank, ranks: p)
        return (shard, try statistics(shard, prunedBoards: prunedBoards, prunedEdges: prunedEdges, comm: comm))
    }

    /// Collective: global statistics and digest of a sharded graph.
    public static func statistics(_ shard: GraphShard, prunedBoards: Int = 0, prunedEdges: Int = 0, comm: Communicator)
        throws -> GraphStatistics
    {
        let pinDeg = (0..<shard.pins.count).map { shard.pins.degree($0) }
        var sums = [
            Int64(shard.pins.count), Int64(shard.boards.count), Int64(shard.pins.edgeCount),
            Int64(pinDeg.filter { $0 == 0 }.count), Int64(prunedBoards), Int64(prunedEdges),
        ]
        try comm.allreduce(&sums, op: .sum)
        var maxes = [
            Int64(pinDeg.max() ?? 0), Int64((0..<shard.boards.count).map { shard.boards.degree($0) }.max() ?? 0),
        ]
        try comm.allreduce(&maxes, op: .max)
        let digests = try comm.allgather([shard.digest()])
        var s = GraphStatistics()
        s.pins = Int(sums[0]); s.boards = Int(sums[1]); s.edges = Int(sums[2]); s.isolatedPins = Int(sums[3])
        s.prunedBoards = Int(sums[4]); s.prunedEdges = Int(sums[5])
        s.maxPinDegree = Int(maxes[0]); s.maxBoardDegree = Int(maxes[1])
        s.digest = digests.reduce(0, &+)
        return s
    }

    /// Collective: sends `(a[i], b[i])` to rank `dest[i]`; returns what this rank received.
    public static func routePairs(_ a: [Int64], _ b: [Int64], dest: [Int], comm: Communicator) throws -> (
        [Int64], [Int64]
    ) {
        let p = comm.size
        var counts = [Int](repeating: 0, count: p)
        for d in dest { counts[d] += 1 }
        var start = [Int](repeating: 0, count: p)
        for r in 1..<max(1, p) { start[r] = start[r - 1] + counts[r - 1] }
        var sendA = [Int64](repeating: 0, count: a.count), sendB = sendA
        for i in 0..<a.count {
            let d = dest[i]
            sendA[start[d]] = a[i]
            sendB[start[d]] = b[i]
            start[d] += 1
        }
        if p == 1 { return (sendA, sendB) }
        let (ra, _) = try comm.alltoallv(sendA, sendCounts: counts)
        sendA = []
        let (rb, _) = try comm.alltoallv(sendB, sendCounts: counts)
        return (ra, rb)
    }

    /// Collective: sends `a[i]` to rank `dest[i]`; returns the values and per-source counts.
    public static func routeOne(_ a: [Int64], dest: [Int], comm: Communicator) throws -> ([Int64], [Int]) {
        let p = comm.size
        var counts = [Int](repeating: 0, count: p)
        for d in dest { counts[d] += 1 }
        var start = [Int](repeating: 0, count: p)
        for r in 1..<max(1, p) { start[r] = start[r - 1] + counts[r - 1] }
        var send = [Int64](repeating: 0, count: a.count)
        for i in 0..<a.count {
            send[start[dest[i]]] = a[i]
            start[dest[i]] += 1
        }
        if p == 1 { return (send, counts) }
        return try comm.alltoallv(send, sendCounts: counts)
    }
}

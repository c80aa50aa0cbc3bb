import Artifacts
import Collective
import EventData
import Events
import Foundation

/// Which rank owns a node of the bipartite graph. Pins and boards live in separate id spaces, so
/// the two sides hash differently (a board id is complemented before hashing): the same number
/// used as a pin id and as a board id need not land on the same rank.
public enum GraphPartition {
    /// `Events.Sharding.hash`, so a pin's graph rank is the rank that holds its rows in a
    /// dataset written by the same number of ranks.
    @inline(__always)
    public static func hash(_ key: Int64) -> UInt64 { Sharding.hash(key) }

    /// The rank in `0 ..< ranks` that owns pin `id`.
    @inline(__always)
    public static func pinOwner(_ id: Int64, ranks: Int) -> Int { Int(hash(id) % UInt64(ranks)) }

    /// The rank in `0 ..< ranks` that owns board `id`.
    @inline(__always)
    public static func boardOwner(_ id: Int64, ranks: Int) -> Int { Int(hash(~id) % UInt64(ranks)) }
}

/// Compressed sparse rows of one side of the graph on one rank: `ids` sorted ascending and
/// unique, the neighbours of `ids[i]` are `neighbors[offsets[i] ..< offsets[i + 1]]`, sorted
/// ascending and unique. Shapes: `ids` (n,), `offsets` (n + 1,), `neighbors` (E,).
public struct CSR: Sendable, Equatable {
    public var ids: [Int64]
    public var offsets: [Int64]
    public var neighbors: [Int64]

    public init(ids: [Int64] = [], offsets: [Int64] = [0], neighbors: [Int64] = []) {
        self.ids = ids
        self.offsets = offsets
        self.neighbors = neighbors
    }

    /// Number of nodes.
    public var count: Int { ids.count }
    /// Number of (directed) edges stored.
    public var edgeCount: Int { neighbors.count }

    /// Builds CSR from edge pairs (`source[i]` → `target[i]`), dropping duplicate pairs;
    /// `isolated` adds nodes with no edges (ignored when they have edges). Passing the arrays
    /// with `consume` frees them once the pairs are copied, before the sort's two buffers exist.
    public static func from(source: consuming [Int64], target: consuming [Int64], isolated: [Int64] = []) -> CSR {
        precondition(source.count == target.count)
        // Sort (source, target) pairs directly (no index indirection), by radix (`EdgeSort`).
        var pairs = [EdgePair]()
        pairs.reserveCapacity(source.count)
        for i in 0..<source.count { pairs.append(EdgePair(s: source[i], t: target[i])) }
        source = []
        target = []
        EdgeSort.sort(&pairs)
        var csr = CSR()
        csr.neighbors.reserveCapacity(pairs.count)
        var lastS = Int64.min, lastT = Int64.min
        for pair in pairs {
            let s = pair.s, t = pair.t
            if s == lastS && t == lastT { continue }
            if s != lastS {
                csr.ids.append(s)
                if csr.ids.count > 1 { csr.offsets.append(Int64(csr.neighbors.count)) }
                lastS = s
            }
            csr.neighbors.append(t)
            lastT = t
        }
        if !csr.ids.isEmpty { csr.offsets.append(Int64(csr.neighbors.count)) }
        if !isolated.isEmpty {
            let extra = Set(isolated).subtracting(csr.ids)
            if !extra.isEmpty {
                // Merge the isolated nodes in id order with zero-length rows.
                var merged = CSR()
                let all = (csr.ids + extra).sorted()
                var j = 0
                for id in all {
                    merged.ids.append(id)
                    if j < csr.ids.count && csr.ids[j] == id {
                        merged.neighbors.append(
                            contentsOf: csr.neighbors[Int(csr.offsets[j])..<Int(csr.offsets[j + 1])])
                        j += 1
                    }
                    merged.offsets.append(Int64(merged.neighbors.count))
                }
                csr = merged
            }
        }
        return csr
    }

    /// Row of `id` (binary search), or nil.
    @inline(__always)
    public func index(of id: Int64) -> Int? {
        var lo = 0, hi = ids.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if ids[mid] < id { lo = mid + 1 } else { hi = mid }
        }
        return lo < ids.count && ids[lo] == id ? lo : nil
    }

    /// Degree of row `i`.
    @inline(__always)
    public func degree(_ i: Int) -> Int { Int(offsets[i + 1] - offsets[i]) }

    /// Checks the CSR invariants; the message names what is wrong (`what` prefixes it).
    public func validate(_ what: String) throws {
        func fail(_ m: String) -> GraphError { GraphError("\(what): \(m)") }
        guard offsets.count == ids.count + 1 else {
            throw fail("offsets has \(offsets.count) entries for \(ids.count) nodes (expected n + 1)")
        }
        guard offsets.first == 0 else { throw fail("offsets[0] = \(offsets.first ?? -1), expected 0") }
        guard offsets.last == Int64(neighbors.count) else {
            throw fail("offsets[n] = \(offsets.last ?? -1), but there are \(neighbors.count) neighbours")
        }
        for i in 0..<ids.count {
            if i > 0 && ids[i] <= ids[i - 1] {
                throw fail("ids not strictly increasing at row \(i) (\(ids[i - 1]), \(ids[i]))")
            }
            let a = Int(offsets[i]), b = Int(offsets[i + 1])
            guard a <= b else { throw fail("offsets decrease at row \(i)") }
            if a < b {
                for k in a + 1..<b where neighbors[k] <= neighbors[k - 1] {
                    throw fail("neighbours of node \(ids[i]) (row \(i)) not strictly increasing")
                }
            }
        }
    }
}

/// A (source, target) edge ordered by source, then target.
struct EdgePair: Comparable {
    var s: Int64, t: Int64
    @inline(__always) static func < (a: EdgePair, b: EdgePair) -> Bool { a.s != b.s ? a.s < b.s : a.t < b.t }
}

/// An error in graph input or graph files, with the file/row/field it concerns in the message.
public struct GraphError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One rank's part of the bipartite pin–board graph: the pins it owns with their boards, and
/// the boards it owns with their pins (`GraphPartition`). Both directions are stored so a walker
/// steps without asking anyone.
public struct GraphShard: Sendable, Equatable {
    /// Pins owned here → their boards.
    public var pins: CSR
    /// Boards owned here → their pins.
    public var boards: CSR
    /// This shard's rank and the rank count it was built for.
    public var rank: Int
    public var ranks: Int

    public init(pins: CSR, boards: CSR, rank: Int, ranks: Int) {
        self.pins = pins
        self.boards = boards
        self.rank = rank
        self.ranks = ranks
    }

    /// Order-independent digest of this shard's edges and nodes (sum of mixed (pin, board)
    /// pairs from the pin side plus mixed isolated-pin ids); summed over ranks it identifies the
    /// graph whatever the rank count.
    public func digest() -> UInt64 {
        var sum: UInt64 = 0
        for i in 0..<pins.count {
            let p = pins.ids[i]
            sum &+= GraphPartition.hash(p ^ 0x5bd1_e995) &* 3
            for k in Int(pins.offsets[i])..<Int(pins.offsets[i + 1]) {
                sum &+= GraphPartition.hash(
                    Int64(bitPattern: GraphPartition.hash(p) &+ UInt64(bitPattern: pins.neighbors[k])))
            }
        }
        for i in 0..<boards.count {
            let b = boards.ids[i]
            for k in Int(boards.offsets[i])..<Int(boards.offsets[i + 1]) {
                sum &+=
                    GraphPartition.hash(
                        Int64(bitPattern: GraphPartition.hash(boards.neighbors[k]) &+ UInt64(bitPattern: b))) &* 5
            }
        }
        return sum
    }

    /// Writes the shard (groups `/pins` and `/boards`, each `ids`, `offsets`, `neighbors`) with
    /// degree statistics as attributes (`count`, `edges`, `max_degree`, `mean_degree`,
    /// `isolated`) and root attributes `shard_rank`, `shard_count`, `producer`.
    public func write(path: String, producer: String, extra: [String: String] = [:]) throws {
        let file = try H5File(path: path, mode: .create)
        try file.root.setAttribute("shard_rank", Int64(rank))
        try file.root.setAttribute("shard_count", Int64(ranks))
        try file.root.setAttribute("producer", producer)
        try file.root.setAttribute("schema_version", Int64(1))
        for (k, v) in extra.sorted(by: { $0.key < $1.key }) { try file.root.setAttribute(k, v) }
        for (name, csr) in [("pins", pins), ("boards", boards)] {
            let g = try file.root.createGroup(name)
            try g.write("ids", csr.ids, shape: [csr.ids.count])
            try g.write("offsets", csr.offsets, shape: [csr.offsets.count])
            try g.write("neighbors", csr.neighbors, shape: [csr.neighbors.count])
            let degrees = (0..<csr.count).map { csr.degree($0) }
            try g.setAttribute("count", Int64(csr.count))
            try g.setAttribute("edges", Int64(csr.edgeCount))
            try g.setAttribute("max_degree", Int64(degrees.max() ?? 0))
            try g.setAttribute("mean_degree", csr.count > 0 ? Double(csr.edgeCount) / Double(csr.count) : 0)
            try g.setAttribute("isolated", Int64(degrees.filter { $0 == 0 }.count))
        }
        try file.flush()
    }

    /// Reads and validates a shard: CSR invariants, and that every node is owned by the shard's
    /// rank for its `shard_count`. Errors name the file and the object.
    public static func read(path: String) throws -> GraphShard {
        let file = try H5File(path: path, mode: .read)
        let rank = Int(try file.root.intAttribute("shard_rank"))
        let ranks = Int(try file.root.intAttribute("shard_count"))
        guard ranks > 0, rank >= 0, rank < ranks else {
            throw GraphError("\(path): shard_rank \(rank) of shard_count \(ranks) is invalid")
        }
        var sides: [CSR] = []
        for name in ["pins", "boards"] {
            let g = try file.root.group(name)
            let csr = CSR(
                ids: try g.read("ids", as: Int64.self), offsets: try g.read("offsets", as: Int64.self),
                neighbors: try g.read("neighbors", as: Int64.self))
            try csr.validate("\(path) /\(name)")
            let isPins = name == "pins"
            func owner(_ id: Int64, _ p: Int) -> Int {
                isPins ? GraphPartition.pinOwner(id, ranks: p) : GraphPartition.boardOwner(id, ranks: p)
            }
            if let bad = csr.ids.first(where: { owner($0, ranks) != rank }) {
                throw GraphError(
                    "\(path) /\(name)/ids: node \(bad) belongs to rank \(owner(bad, ranks)), not shard \(rank) of \(ranks)"
                )
            }
            sides.append(csr)
        }
        return GraphShard(pins: sides[0], boards: sides[1], rank: rank, ranks: ranks)
    }
}

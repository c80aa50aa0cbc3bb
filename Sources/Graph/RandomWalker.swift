import Artifacts
import Collective
import Foundation
import Linalg

/// Parameters of the distributed random walks with restart (Pixie-style, pin → board → pin).
public struct WalkParameters: Sendable {
    /// Walks started from every pin.
    public var walksPerPin: Int
    /// After each arrival at a pin the walk ends with this probability (restart: the next walk
    /// starts again from the query pin).
    public var restartProbability: Double
    /// A walk ends after this many edge traversals (pin → board counts one, board → pin one).
    public var maxSteps: Int
    /// Importance neighbours kept per pin (the most visited other pins).
    public var topT: Int
    /// Base seed; walker streams are keyed by (seed, start pin, walk index, step).
    public var seed: UInt64
    /// Pins per rank whose walks run together (bounds the walkers in flight).
    public var batchPins: Int

    public init(
        walksPerPin: Int = 32, restartProbability: Double = 0.3, maxSteps: Int = 20, topT: Int = 20, seed: UInt64 = 1,
        batchPins: Int = 4096
    ) {
        self.walksPerPin = walksPerPin
        self.restartProbability = restartProbability
        self.maxSteps = maxSteps
        self.topT = topT
        self.seed = seed
        self.batchPins = batchPins
    }
}

/// Top-T importance neighbours of this rank's pins: row i of `ids`/`weights` (each (n, T),
/// padded with −1 / 0) belongs to `pins[i]`; `weights` are visit counts normalised to sum 1 over
/// the kept neighbours, `counts` the raw visit counts.
public struct ImportanceNeighbors: Sendable, Equatable {
    public var t: Int
    public var pins: [Int64] = []
    public var ids: [Int64] = []
    public var counts: [Int32] = []
    public var weights: [Float] = []

    public init(t: Int) { self.t = t }

    /// Neighbours of row `i` (without padding).
    public func neighbors(_ i: Int) -> [(id: Int64, weight: Float)] {
        (0..<t).compactMap { k in ids[i * t + k] >= 0 ? (ids[i * t + k], weights[i * t + k]) : nil }
    }

    /// Order-independent digest of (pin, neighbour, count) triples.
    public func digest() -> UInt64 {
        var sum: UInt64 = 0
        for i in 0..<pins.count {
            let h = GraphPartition.hash(pins[i])
            for k in 0..<t where ids[i * t + k] >= 0 {
                sum &+= GraphPartition.hash(
                    Int64(
                        bitPattern: (h &* 31) &+ GraphPartition.hash(ids[i * t + k]) &+ UInt64(counts[i * t + k])
                            &* 0x9E37_79B9))
            }
            sum &+= h
        }
        return sum
    }

    /// Writes group `/neighbors` (`pin_ids` (n,), `ids` (n, T), `weights` (n, T), `counts` (n, T)).
    public func write(path: String, rank: Int, ranks: Int, parameters: WalkParameters, producer: String) throws {
        let file = try H5File(path: path, mode: .create)
        try file.root.setAttribute("shard_rank", Int64(rank))
        try file.root.setAttribute("shard_count", Int64(ranks))
        try file.root.setAttribute("producer", producer)
        let g = try file.root.createGroup("neighbors")
        try g.write("pin_ids", pins, shape: [pins.count])
        try g.write("ids", ids, shape: [pins.count, t])
        try g.write("weights", weights, shape: [pins.count, t])
        try g.write("counts", counts, shape: [pins.count, t])
        try g.setAttribute("top_t", Int64(t))
        try g.setAttribute("walks_per_pin", Int64(parameters.walksPerPin))
        try g.setAttribute("restart_probability", parameters.restartProbability)
        try g.setAttribute("max_steps", Int64(parameters.maxSteps))
        try g.setAttribute("seed", Int64(bitPattern: parameters.seed))
        try file.flush()
    }

    /// Reads a file written by `write`.
    public static func read(path: String) throws -> ImportanceNeighbors {
        let file = try H5File(path: path, mode: .read)
        let g = try file.root.group("neighbors")
        var n = ImportanceNeighbors(t: Int(try g.intAttribute("top_t")))
        n.pins = try g.read("pin_ids", as: Int64.self)
        n.ids = try g.read("ids", as: Int64.self)
        n.weights = try g.read("weights", as: Float.self)
        n.counts = try g.read("counts", as: Int32.self)
        guard n.ids.count == n.pins.count * n.t, n.weights.count == n.ids.count, n.counts.count == n.ids.count else {
            throw GraphError("\(path) /neighbors: ids/weights/counts are not (\(n.pins.count), \(n.t))")
        }
        return n
    }
}

/// Figures of one walk job (global, equal on every rank).
public struct WalkStatistics: Sendable {
    /// Edge traversals by all walkers.
    public var steps = 0
    /// Walkers sent to another rank (summed over exchanges).
    public var forwarded = 0
    /// alltoallv exchange rounds.
    public var exchanges = 0
}

/// Distributed random walks with restart over a sharded `GraphShard`.
///
/// Every rank starts the walks of the pins it owns; a walker whose next node lives on another
/// rank is queued and sent there in the next `alltoallv` batch, until no walker is left. Each
/// step draws from a stream keyed by (seed, start pin, walk, step), so the walks — and the visit
/// counts — are identical for any rank count. Visits are recorded at the visited pin's owner and
/// routed to the start pin's owner at the end of each batch of start pins.
public enum RandomWalker {
    /// Collective: walks from every pin of `shard` and returns its top-T neighbours.
    public static func run(
        _ shard: GraphShard, parameters w: WalkParameters, comm: Communicator, progress: ((Int, Int) -> Void)? = nil
    ) throws -> (ImportanceNeighbors, WalkStatistics) {
        let p = comm.size
        precondition(shard.ranks == p, "the graph shard was built for \(shard.ranks) ranks")
        let pins = shard.pins, boards = shard.boards
        let localPins = pins.count
        let batch = max(1, w.batchPins)
        let rounds = try comm.allreduce((localPins + batch - 1) / batch, op: .max)
        var result = ImportanceNeighbors(t: w.topT)
        var stats = WalkStatistics()
        var localSteps = 0, localForwarded = 0
        // A walker is 3 Int64: start pin, current node, meta = walk << 33 | step << 1 | atBoard.
        for round in 0..<rounds {
            let lo = min(localPins, round * batch), hi = min(localPins, lo + batch)
            var queue = [Int64]()
            queue.reserveCapacity((hi - lo) * w.walksPerPin * 3)
            for i in lo..<hi {
                for walk in 0..<w.walksPerPin {
                    queue.append(pins.ids[i]); queue.append(pins.ids[i]); queue.append(Int64(walk) << 33)
                }
            }
            var visitStart = [Int64](), visitPin = [Int64]()
            while true {
                var out = [[Int64]](repeating: [], count: p)
                var q = 0
                while q < queue.count {
                    let start = queue[q]
                    var node = queue[q + 1]
                    let meta = queue[q + 2]
                    q += 3
                    let walk = UInt64(meta >> 33)
                    var step = Int((meta >> 1) & 0xFFFF_FFFF)
                    var atBoard = meta & 1 == 1
                    // Advance while the walker stays on this rank.
                    while true {
                        var rng = RandomStream(
                            seed: w.seed, rank: UInt64(bitPattern: start), index: walk << 32 | UInt64(step))
                        let next: Int64
                        if atBoard {
                            guard let bi = boards.index(of: node) else {
                                throw GraphError(
                                    "rank \(comm.rank): walker at board \(node) which is not in this shard (dangling board id in the neighbours of a pin)"
                                )
                            }
                            let d = boards.degree(bi)
                            next = boards.neighbors[Int(boards.offsets[bi]) + rng.int(below: d)]
                        } else {
                            guard let pi = pins.index(of: node) else {
                                throw GraphError(
                                    "rank \(comm.rank): walker at pin \(node) which is not in this shard (dangling pin id in the neighbours of a board)"
                                )
                            }
                            if step > 0 {
                                visitStart.append(start); visitPin.append(node)
                                if step >= w.maxSteps || rng.uniform() < w.restartProbability { break }
                            }
                            let d = pins.degree(pi)
                            if d == 0 { break }
                            next = pins.neighbors[Int(pins.offsets[pi]) + rng.int(below: d)]
                        }
                        step += 1
                        localSteps += 1
                        atBoard.toggle()
                        node = next
                        let owner =
                            atBoard
                            ? GraphPartition.boardOwner(node, ranks: p) : GraphPartition.pinOwner(node, ranks: p)
                        if owner != comm.rank {
                            out[owner].append(start); out[owner].append(node)
                            out[owner].append(Int64(walk) << 33 | Int64(step) << 1 | (atBoard ? 1 : 0))
                            localForwarded += 1
                            break
                        }
                    }
                }
                if p == 1 { break }
                let counts = out.map(\.count)
                let (received, _) = try comm.alltoallv(out.flatMap { $0 }, sendCounts: counts)
                stats.exchanges += 1
                let live = try comm.allreduce(received.count, op: .sum)
                queue = received
                if live == 0 { break }
            }
            // Visits to the start pin's owner; count and keep the top T per start pin.
            let (vs, vp) = try GraphBuilder.routePairs(
                visitStart, visitPin, dest: visitStart.map { GraphPartition.pinOwner($0, ranks: p) }, comm: comm)
            visitStart = []; visitPin = []
            var visits = [EdgePair]()
            visits.reserveCapacity(vs.count)
            for j in 0..<vs.count { visits.append(EdgePair(s: vs[j], t: vp[j])) }
            visits.sort()
            var k = 0
            for i in lo..<hi {
                let s = pins.ids[i]
                var cand: [(Int64, Int32)] = []
                while k < visits.count && visits[k].s < s { k += 1 }
                while k < visits.count && visits[k].s == s {
                    let v = visits[k].t
                    var c: Int32 = 0
                    while k < visits.count && visits[k].s == s && visits[k].t == v { c += 1; k += 1 }
                    if v != s { cand.append((v, c)) }
                }
                cand.sort { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
                let kept = cand.prefix(w.topT)
                let total = Float(kept.reduce(0) { $0 + Int($1.1) })
                result.pins.append(s)
                for j in 0..<w.topT {
                    if j < kept.count {
                        let (id, c) = kept[kept.startIndex + j]
                        result.ids.append(id); result.counts.append(c); result.weights.append(Float(c) / total)
                    } else {
                        result.ids.append(-1); result.counts.append(0); result.weights.append(0)
                    }
                }
            }
            progress?(round + 1, rounds)
        }
        var sums = [Int64(localSteps), Int64(localForwarded)]
        try comm.allreduce(&sums, op: .sum)
        stats.steps = Int(sums[0]); stats.forwarded = Int(sums[1])
        return (result, stats)
    }
}

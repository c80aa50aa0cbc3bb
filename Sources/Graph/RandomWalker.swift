import Artifacts
import CKernels
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
    /// Hard-negative band (PinSage's curriculum negatives): `hardCount` pins per start pin at
    /// evenly spaced visit-count ranks in `hardFrom ..< hardTo` (0-based, most visited first,
    /// the start pin excluded) — related to the pin, but less than its top neighbours. The visit
    /// counts are a Monte-Carlo personalised PageRank. 0 = none.
    public var hardFrom = 0, hardTo = 0, hardCount = 0
    /// Walkers stepped together through the four loops of one pass (`RandomWalker.advance`):
    /// small enough for their records and scratch to stay in L2 between the loops, large enough
    /// to keep many cache misses in flight. Results do not depend on it.
    public var tileWalkers = 8192

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
    /// Width of the hard-negative band (`WalkParameters.hardCount`, 0 = none) and the band,
    /// (n, h) −1 padded, hardest (most visited) first.
    public var h = 0
    public var hard: [Int64] = []

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
            for k in 0..<self.h where hard[i * self.h + k] >= 0 {
                sum &+= GraphPartition.hash(hard[i * self.h + k] &+ Int64(bitPattern: h &* 7) &+ Int64(k)) &* 11
            }
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
        if h > 0 {
            try g.write("hard_ids", hard, shape: [pins.count, h])
            try g.setAttribute("hard_from", Int64(parameters.hardFrom))
            try g.setAttribute("hard_to", Int64(parameters.hardTo))
        }
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
        if try g.names().contains("hard_ids") {
            n.hard = try g.read("hard_ids", as: Int64.self)
            n.h = n.pins.isEmpty ? 0 : n.hard.count / n.pins.count
            guard n.hard.count == n.pins.count * n.h else {
                throw GraphError("\(path) /neighbors/hard_ids: \(n.hard.count) values for \(n.pins.count) pins")
            }
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
    /// This rank's time per phase.
    public var phases = WalkPhases()

    public init() {}
}

/// Distributed random walks with restart over a sharded `GraphShard`.
///
/// Every rank starts the walks of the pins it owns. Walkers advance in lock-step passes over a
/// flat array (one edge per walker per pass, so the cache misses of different walkers overlap);
/// a walker keeps stepping on this rank until it reaches a node owned by another rank or ends,
/// and only then is queued for the next exchange round: one count exchange that also carries the
/// global number of walkers in flight (the termination test) and one `alltoallv`
/// (`Communicator.alltoallvCounted`), until no walker is left. A walker that reaches a pin of
/// another rank has that visit recorded and its end-or-restart draw taken before it leaves (both
/// depend only on the walker), so the walks that end at that pin never cross. Received walkers
/// join the lock-step probe loops like local ones. Each step draws from a counter-based stream
/// keyed by (seed, start pin, walk, step) (`WalkerStream`), so the walks — and the visit counts —
/// are identical for any rank count. Node lookups go through an open-addressing `NodeTable` (one
/// cache line per step). Visits are recorded where the walker arrives at the pin (on the pin's
/// owner, or on the rank it leaves for it) as (start pin's position in its owner's batch, visited
/// pin), routed to the start pin's owner at the end of each batch of start pins, and counted there
/// by a counting sort on the position followed by a small sort per start pin.
/// `WalkStatistics.phases` times each phase.
public enum RandomWalker {
    /// A walker in flight on the rank that owns its current node; `span ..< span + degree` are
    /// the current node's neighbours in this rank's CSR.
    struct Walker {
        var start: Int64
        var node: Int64
        var key: UInt64
        var span: Int64
        var degree: Int64
        /// walk << 40 | step << 24 | position of the start pin in its owner's batch << 1 | at board.
        var meta: UInt64
    }

    static let stepShift: UInt64 = 24, walkShift: UInt64 = 40
    static let maxBatch = 1 << 23, maxWalks = 1 << 24, maxStepLimit = (1 << 16) - 1

    /// Collective: walks from every pin of `shard` and returns its top-T neighbours.
    public static func run(
        _ shard: GraphShard, parameters w: WalkParameters, comm: Communicator, progress: ((Int, Int) -> Void)? = nil
    ) throws -> (ImportanceNeighbors, WalkStatistics) {
        var phases = WalkPhases()
        var t = WalkPhases.clocks()
        let p = comm.size, rank = comm.rank
        precondition(shard.ranks == p, "the graph shard was built for \(shard.ranks) ranks")
        guard w.walksPerPin > 0, w.walksPerPin <= maxWalks, w.maxSteps > 0, w.maxSteps <= maxStepLimit, w.topT > 0
        else {
            throw GraphError(
                "walk parameters out of range: walks per pin \(w.walksPerPin) (1…\(maxWalks)), max steps \(w.maxSteps) (1…\(maxStepLimit)), top \(w.topT) (> 0)"
            )
        }
        let pins = shard.pins
        let localPins = pins.count
        let batch = min(maxBatch, max(1, w.batchPins))
        let rounds = try comm.allreduce((localPins + batch - 1) / batch, op: .max)
        let pinTable = try NodeTable(shard.pins, boardSide: false)
        let boardTable = try NodeTable(shard.boards, boardSide: true)
        // u < restart  ⇔  (53 random bits) < restart · 2⁵³.
        let restartBits = UInt64(min(1, max(0, w.restartProbability)) * 0x1p53)
        guard w.hardCount == 0 || (w.hardFrom >= 0 && w.hardTo > w.hardFrom) else {
            throw GraphError("hard-negative band \(w.hardFrom)..<\(w.hardTo) is empty")
        }
        var result = ImportanceNeighbors(t: w.topT)
        result.h = w.hardCount
        result.pins.reserveCapacity(localPins)
        result.ids.reserveCapacity(localPins * w.topT)
        result.counts.reserveCapacity(localPins * w.topT)
        result.weights.reserveCapacity(localPins * w.topT)
        var stats = WalkStatistics()
        var localSteps = 0, localForwarded = 0
        var walkers = [Walker]()
        let scratch = WalkScratch()
        var forward = [Int64]()  // (owner, start, node, meta) per walker leaving this rank
        let buffers = ExchangeBuffers()
        var visitKey = [UInt64](), visitPin = [Int64]()  // (start owner << 32 | position, visited pin)
        t = phases.lap(.setup, since: t)
        for round in 0..<rounds {
            let lo = min(localPins, round * batch), hi = min(localPins, lo + batch)
            walkers.removeAll(keepingCapacity: true)
            walkers.reserveCapacity((hi - lo) * w.walksPerPin)
            for i in lo..<hi {
                let id = pins.ids[i], span = pins.offsets[i], degree = pins.offsets[i + 1] - span
                for walk in 0..<w.walksPerPin {
                    walkers.append(
                        Walker(
                            start: id, node: id, key: WalkerStream.key(seed: w.seed, start: id, walk: UInt64(walk)),
                            span: span, degree: degree, meta: UInt64(walk) << walkShift | UInt64(i - lo) << 1))
                }
            }
            t = phases.lap(.seed, since: t)
            var arrived = false
            while true {
                try advance(
                    &walkers, shard: shard, pinTable: pinTable, boardTable: boardTable, rank: rank, ranks: p,
                    maxSteps: UInt64(w.maxSteps), restartBits: restartBits, arrived: arrived,
                    tile: max(1, w.tileWalkers), scratch: scratch,
                    steps: &localSteps,
                    forwarded: &localForwarded, forward: &forward, visitKey: &visitKey, visitPin: &visitPin)
                t = phases.lap(.step, since: t)
                if p == 1 { break }
                let live = try exchange(&forward, comm: comm, buffers: buffers, phases: &phases, clock: &t)
                stats.exchanges += 1
                if live == 0 { break }
                receive(buffers.received, into: &walkers, seed: w.seed)
                t = phases.lap(.unpack, since: t)
                arrived = true
            }
            try routeVisits(&visitKey, &visitPin, comm: comm, buffers: buffers) { visits in
                t = phases.lap(.visits, since: t)
                count(
                    visits, starts: pins.ids[lo..<hi], topT: w.topT, hard: (w.hardFrom, w.hardTo, w.hardCount),
                    buffers: buffers, into: &result)
            }
            t = phases.lap(.count, since: t)
            progress?(round + 1, rounds)
        }
        var sums = [Int64(localSteps), Int64(localForwarded)]
        try comm.allreduce(&sums, op: .sum)
        stats.steps = Int(sums[0]); stats.forwarded = Int(sums[1])
        phases.lap(.setup, since: t)
        phases.rounds = stats.exchanges
        stats.phases = phases
        return (result, stats)
    }

    /// Steps every walker in `walkers` in lock-step passes until each has ended or left for
    /// another rank (appended to `forward`); records pin visits.
    ///
    /// Each half-step is four tight loops over a tile of `tile` walkers (`WalkParameters.tileWalkers`:
    /// 8192 walkers of 48 B are about 400 KiB, so their records and the scratch stay in L2 from
    /// loop to loop and a pass streams the walker array from memory once, not once per loop): (1) visits, restarts and
    /// the choice of the edge (no cache misses), (2) the gather of the next node ids from the
    /// neighbour arrays, (3) the hash of each next node and a prefetch of its table line, (4) the
    /// owner test, the lookup in the (now cached) line and the bookkeeping. Loops 2 and 3 carry
    /// one independent cache miss per walker, few instructions and no branch on loaded data, so
    /// the processor keeps many misses in flight; a walker-at-a-time loop would wait for each
    /// miss in turn (3× slower measured). Tiles are taken in order and compacted in place, so
    /// walkers, visits and departures come out in the same order as with passes over the whole
    /// array.
    static func advance(
        _ walkers: inout [Walker], shard: GraphShard, pinTable: NodeTable, boardTable: NodeTable, rank: Int,
        ranks p: Int, maxSteps: UInt64, restartBits: UInt64, arrived: Bool = false, tile: Int = 8192,
        scratch: WalkScratch, steps: inout Int, forwarded: inout Int, forward: inout [Int64], visitKey: inout [UInt64],
        visitPin: inout [Int64]
    ) throws {
        var n = walkers.count
        var taken = 0, left = 0
        let stepMask: UInt64 = 0xFFFF << stepShift
        // Per-tile scratch (at most one visit and one departure per walker and pass), appended
        // to the growing arrays after each loop: no array bookkeeping inside the loops.
        scratch.reserve(min(n, tile))
        let vk = scratch.visitKey, vp = scratch.visitPin, fw = scratch.departures
        let hs = scratch.hash, dummy = UnsafePointer(scratch.dummy)
        let ownerOf = OwnerOf(ranks: p)
        try shard.pins.neighbors.withUnsafeBufferPointer { pinNeighbors in
            try shard.boards.neighbors.withUnsafeBufferPointer { boardNeighbors in
                try pinTable.slots.withUnsafeBufferPointer { pinSlots in
                    try boardTable.slots.withUnsafeBufferPointer { boardSlots in
                        try walkers.withUnsafeMutableBufferPointer { all in
                            var probeOnly = arrived
                            // The pass after the arrival of received walkers: a walker that came to
                            // a pin had that visit and its restart draw on the sending rank.
                            var visitedOnArrival = false
                            while n > 0 {
                                // `kept` walkers of this pass so far, compacted to the front.
                                var kept = 0
                                var from = 0
                                while from < n {
                                    let to = min(n, from + tile)
                                    // The tile's surviving walkers move to `kept ..< kept + m`
                                    // (never past an unread one: kept ≤ from).
                                    let wb = all.baseAddress.unsafelyUnwrapped + kept
                                    let src = all.baseAddress.unsafelyUnwrapped + from
                                    // (1) Arrivals at pins are visits; end or choose the next edge.
                                    var m = 0, nv = 0
                                    if probeOnly {
                                        // Walkers just received: their node is set, only its span is missing.
                                        m = to - from
                                        if kept != from { for q in 0..<m { wb[q] = src[q] } }  // forward copy: wb < src
                                    } else {
                                        for q in 0..<(to - from) {
                                            var x = src[q]
                                            let step = (x.meta & stepMask) >> stepShift
                                            let atBoard = x.meta & 1 == 1
                                            if !atBoard && step > 0 && !visitedOnArrival {
                                                vk[nv] = visitRecordKey(x, ownerOf: ownerOf)
                                                vp[nv] = x.node
                                                nv += 1
                                                if step >= maxSteps { continue }
                                                if WalkerStream.draw(x.key, step: step, 1) >> 11 < restartBits {
                                                    continue
                                                }
                                            }
                                            if x.degree == 0 { continue }
                                            x.span += WalkerStream.below(
                                                x.degree, WalkerStream.draw(x.key, step: step, 0))
                                            // The low bit now tells the side of the next node.
                                            x.meta =
                                                (x.meta & ~(stepMask | 1)) | (step + 1) << stepShift | (atBoard ? 0 : 1)
                                            wb[m] = x
                                            m += 1
                                        }
                                        taken += m
                                        visitKey.append(contentsOf: UnsafeBufferPointer(start: vk, count: nv))
                                        visitPin.append(contentsOf: UnsafeBufferPointer(start: vp, count: nv))
                                        // (2) Gather the next node ids (one independent miss each).
                                        let pinBase = pinNeighbors.baseAddress, boardBase = boardNeighbors.baseAddress
                                        for q in 0..<m {
                                            let base = wb[q].meta & 1 == 1 ? pinBase : boardBase
                                            wb[q].node = base.unsafelyUnwrapped[Int(wb[q].span)]
                                        }
                                    }
                                    // (3) Hash and owner of each walker's node, and a prefetch of its first
                                    // table line (a node on another rank prefetches `dummy`): one independent
                                    // miss per walker that no instruction waits for, so the misses of the
                                    // whole tile are in flight together. (Loading the line here and choosing
                                    // its slot compiled to a branch on the loaded ids, which stalls on each
                                    // miss; the prefetch measured the same or a little faster.)
                                    let pinBaseSlots = pinSlots.baseAddress.unsafelyUnwrapped
                                    let boardBaseSlots = boardSlots.baseAddress.unsafelyUnwrapped
                                    let pinSize = pinTable.size, boardSize = boardTable.size
                                    for q in 0..<m {
                                        let node = wb[q].node
                                        let atBoard = wb[q].meta & 1 == 1
                                        let h = GraphPartition.hash(atBoard ? ~node : node)
                                        hs[q] = h
                                        let at =
                                            atBoard
                                            ? boardBaseSlots + NodeTable.index(h, boardSize)
                                            : pinBaseSlots + NodeTable.index(h, pinSize)
                                        mosaic_prefetch(ownerOf(h) == rank ? at : dummy)
                                    }
                                    // (4) Owner test; local walkers look their node up in its line, now in
                                    // cache, for the neighbour span.
                                    var k = 0, nf = 0
                                    nv = 0
                                    for q in 0..<m {
                                        var x = wb[q]
                                        let atBoard = x.meta & 1 == 1
                                        let h = hs[q]
                                        if p > 1 {
                                            let owner = ownerOf(h)
                                            if owner != rank {
                                                if !atBoard {
                                                    // Arrival at a pin of another rank: its visit and
                                                    // the end-or-restart draw (which depend only on the
                                                    // walker) are taken here, so a walker that ends at
                                                    // that pin is never sent.
                                                    let step = (x.meta & stepMask) >> stepShift
                                                    vk[nv] = visitRecordKey(x, ownerOf: ownerOf)
                                                    vp[nv] = x.node
                                                    nv += 1
                                                    if step >= maxSteps
                                                        || WalkerStream.draw(x.key, step: step, 1) >> 11 < restartBits
                                                    {
                                                        continue
                                                    }
                                                }
                                                fw[nf] = Int64(owner); fw[nf + 1] = x.start; fw[nf + 2] = x.node
                                                fw[nf + 3] = Int64(bitPattern: x.meta)
                                                nf += 4
                                                continue
                                            }
                                        }
                                        let slot =
                                            atBoard
                                            ? boardSlots.find(x.node, hash: h, size: boardSize)
                                            : pinSlots.find(x.node, hash: h, size: pinSize)
                                        guard let slot else { throw dangling(x.node, atPin: !atBoard, rank: rank) }
                                        (x.span, x.degree) = (atBoard ? boardTable : pinTable).span(slot)
                                        wb[k] = x
                                        k += 1
                                    }
                                    kept += k
                                    left += nf / 4
                                    forward.append(contentsOf: UnsafeBufferPointer(start: fw, count: nf))
                                    visitKey.append(contentsOf: UnsafeBufferPointer(start: vk, count: nv))
                                    visitPin.append(contentsOf: UnsafeBufferPointer(start: vp, count: nv))
                                    from = to
                                }
                                n = kept
                                visitedOnArrival = probeOnly
                                probeOnly = false
                            }
                        }
                    }
                }
            }
        }
        walkers.removeAll(keepingCapacity: true)
        steps += taken
        forwarded += left
    }

    /// The visit record's key of walker `x`: start owner << 32 | position of the start pin in
    /// its owner's batch. The owner is hashed here rather than carried (48-byte walkers stream
    /// less memory); on one rank it is 0.
    @inline(__always)
    static func visitRecordKey(_ x: Walker, ownerOf: OwnerOf) -> UInt64 {
        let owner = ownerOf.ranks > 1 ? UInt64(ownerOf(GraphPartition.hash(x.start))) : 0
        return owner << 32 | (x.meta & 0xFF_FFFE) >> 1
    }

    static func dangling(_ node: Int64, atPin: Bool, rank: Int) -> GraphError {
        atPin
            ? GraphError(
                "rank \(rank): walker at pin \(node) which is not in this shard (dangling pin id in the neighbours of a board)"
            )
            : GraphError(
                "rank \(rank): walker at board \(node) which is not in this shard (dangling board id in the neighbours of a pin)"
            )
    }

    /// Collective: sends the queued walkers (4 words each, owner first) to their owners; leaves
    /// the received (start, node, meta) triples in `buffers.received` and returns the global
    /// number of walkers in flight (one count exchange and one alltoallv: `alltoallvCounted`).
    static func exchange(
        _ forward: inout [Int64], comm: Communicator, buffers: ExchangeBuffers, phases: inout WalkPhases,
        clock t: inout (wall: Double, cpu: Double)
    ) throws -> Int {
        let p = comm.size
        var counts = [Int](repeating: 0, count: p)
        var q = 0
        while q < forward.count { counts[Int(forward[q])] += 3; q += 4 }
        var at = [Int](repeating: 0, count: p)
        for r in 1..<p { at[r] = at[r - 1] + counts[r - 1] }
        buffers.resizeSend(forward.count / 4 * 3)
        buffers.send.withUnsafeMutableBufferPointer { send in
            q = 0
            while q < forward.count {
                let r = Int(forward[q])
                send[at[r]] = forward[q + 1]; send[at[r] + 1] = forward[q + 2]; send[at[r] + 2] = forward[q + 3]
                at[r] += 3
                q += 4
            }
        }
        forward.removeAll(keepingCapacity: true)
        phases.bytesSent += buffers.send.count * 8
        t = phases.lap(.pack, since: t)
        let (_, live) = try buffers.send.withUnsafeBufferPointer {
            try comm.alltoallvCounted($0, sendCounts: counts, storage: buffers.receive)
        }
        t = phases.lap(.exchange, since: t)
        return live / 3
    }

    /// Turns received (start, node, meta) triples into walkers at nodes of this rank; their
    /// neighbour spans are looked up by `advance(arrived: true)` in its lock-step probe loops.
    static func receive(_ received: UnsafeBufferPointer<Int64>, into walkers: inout [Walker], seed: UInt64) {
        walkers.removeAll(keepingCapacity: true)
        walkers.reserveCapacity(received.count / 3)
        var q = 0
        while q < received.count {
            let start = received[q], node = received[q + 1], meta = UInt64(bitPattern: received[q + 2])
            q += 3
            walkers.append(
                Walker(
                    start: start, node: node, key: WalkerStream.key(seed: seed, start: start, walk: meta >> walkShift),
                    span: 0, degree: 0, meta: meta))
        }
    }

    /// Collective: sends each visit (start owner << 32 | position, visited pin) to its start
    /// pin's owner, then calls `body` with this rank's visits (positions index the batch's start
    /// pins). On one rank the visits are read in place; on more, as the (position, pin) pairs
    /// received into `buffers.received`. `key` and `pin` are emptied (capacity kept).
    static func routeVisits(
        _ key: inout [UInt64], _ pin: inout [Int64], comm: Communicator, buffers: ExchangeBuffers,
        _ body: (Visits) throws -> Void
    ) throws {
        let p = comm.size
        defer { key.removeAll(keepingCapacity: true); pin.removeAll(keepingCapacity: true) }
        if p == 1 {
            // The start owner is 0: the key is the position.
            return try key.withUnsafeBufferPointer { k in
                try pin.withUnsafeBufferPointer { v in
                    try k.withMemoryRebound(to: Int64.self) { positions in
                        try body(
                            Visits(positions: positions.baseAddress, pins: v.baseAddress, stride: 1, count: v.count))
                    }
                }
            }
        }
        var counts = [Int](repeating: 0, count: p)
        for k in key { counts[Int(k >> 32)] += 2 }
        var at = [Int](repeating: 0, count: p)
        for r in 1..<p { at[r] = at[r - 1] + counts[r - 1] }
        buffers.resizeSend(key.count * 2)
        buffers.send.withUnsafeMutableBufferPointer { send in
            for j in 0..<key.count {
                let r = Int(key[j] >> 32)
                send[at[r]] = Int64(bitPattern: key[j] & 0xFFFF_FFFF); send[at[r] + 1] = pin[j]
                at[r] += 2
            }
        }
        _ = try buffers.send.withUnsafeBufferPointer {
            try comm.alltoallvCounted($0, sendCounts: counts, storage: buffers.receive)
        }
        let r = buffers.received
        try body(Visits(positions: r.baseAddress, pins: r.baseAddress.map { $0 + 1 }, stride: 2, count: r.count / 2))
    }

    /// The visits of one batch of start pins on their owner, read in place: visit `j` is
    /// (`positions[j · stride]`, `pins[j · stride]`).
    struct Visits {
        let positions: UnsafePointer<Int64>?
        let pins: UnsafePointer<Int64>?
        let stride: Int
        let count: Int
    }

    /// `count(_:starts:topT:hard:buffers:into:)` over arrays (`positions[j]` indexes `starts`,
    /// `visited[j]` is the visited pin).
    static func count(
        positions: [Int64], visited: [Int64], starts: ArraySlice<Int64>, topT: Int,
        hard: (from: Int, to: Int, count: Int) = (0, 0, 0), into result: inout ImportanceNeighbors
    ) {
        precondition(positions.count == visited.count)
        positions.withUnsafeBufferPointer { q in
            visited.withUnsafeBufferPointer { v in
                count(
                    Visits(positions: q.baseAddress, pins: v.baseAddress, stride: 1, count: q.count), starts: starts,
                    topT: topT, hard: hard, buffers: ExchangeBuffers(), into: &result)
            }
        }
    }

    /// Counts the visits of each start pin (a visit's position indexes `starts`) and appends
    /// the top T to `result` (most visits first, ties by smaller id; the start pin itself is
    /// skipped). A counting sort groups the visits by start pin (into `buffers`, reused from
    /// batch to batch); each group (a few to a few hundred ids) is sorted in place, run-length
    /// counted, and the top T kept by insertion.
    static func count(
        _ visits: Visits, starts: ArraySlice<Int64>, topT: Int, hard: (from: Int, to: Int, count: Int) = (0, 0, 0),
        buffers: ExchangeBuffers, into result: inout ImportanceNeighbors
    ) {
        let n = starts.count
        buffers.offsets.removeAll(keepingCapacity: true)
        buffers.offsets.append(contentsOf: repeatElement(0, count: n + 1))
        buffers.flat.removeAll(keepingCapacity: true)
        buffers.flat.append(contentsOf: repeatElement(0, count: visits.count))
        let base = result.ids.count
        result.pins.append(contentsOf: starts)
        result.ids.append(contentsOf: repeatElement(-1, count: n * topT))
        result.counts.append(contentsOf: repeatElement(0, count: n * topT))
        result.weights.append(contentsOf: repeatElement(0, count: n * topT))
        let hardBase = result.hard.count
        result.hard.append(contentsOf: repeatElement(-1, count: n * hard.count))
        var ranked: [(id: Int64, count: Int32)] = []
        buffers.offsets.withUnsafeMutableBufferPointer { offsets in
            buffers.flat.withUnsafeMutableBufferPointer { fb in
                if visits.count > 0, let positions = visits.positions, let pins = visits.pins {
                    // Counting sort by position: group sizes, group ends, then a scatter that moves
                    // each group's end back to its start.
                    let stride = visits.stride
                    for j in 0..<visits.count { offsets[Int(positions[j * stride]) + 1] += 1 }
                    for i in 0..<n { offsets[i + 1] += offsets[i] }
                    var j = visits.count - 1
                    while j >= 0 {
                        let q = Int(positions[j * stride]) + 1
                        offsets[q] -= 1
                        fb[offsets[q]] = pins[j * stride]
                        j -= 1
                    }
                    // offsets[q + 1] is now the start of group q; shift to offsets[q].
                    for i in 0..<n { offsets[i] = offsets[i + 1] }
                    offsets[n] = visits.count
                }
                result.ids.withUnsafeMutableBufferPointer { allIDs in
                    result.counts.withUnsafeMutableBufferPointer { allCounts in
                        result.weights.withUnsafeMutableBufferPointer { allWeights in
                            let ids = UnsafeMutableBufferPointer(rebasing: allIDs[base...])
                            let counts = UnsafeMutableBufferPointer(rebasing: allCounts[base...])
                            let weights = UnsafeMutableBufferPointer(rebasing: allWeights[base...])
                            for i in 0..<n {
                                let s = starts[starts.startIndex + i]
                                var slice = UnsafeMutableBufferPointer(rebasing: fb[offsets[i]..<offsets[i + 1]])
                                if slice.count <= 32 {
                                    // Insertion sort: groups are mostly small.
                                    var a = 1
                                    while a < slice.count {
                                        let v = slice[a]
                                        var b = a
                                        while b > 0 && slice[b - 1] > v { slice[b] = slice[b - 1]; b -= 1 }
                                        slice[b] = v
                                        a += 1
                                    }
                                } else {
                                    slice.sort()
                                }
                                // Run-length count in id order; keep the top T by insertion after equal
                                // counts, so ties stay in ascending id order.
                                let row = i * topT
                                var kept = 0, k = 0
                                while k < slice.count {
                                    let v = slice[k]
                                    var c: Int32 = 0
                                    while k < slice.count && slice[k] == v { c += 1; k += 1 }
                                    if v == s || (kept == topT && c <= counts[row + topT - 1]) { continue }
                                    var b = min(kept, topT - 1)
                                    while b > 0 && counts[row + b - 1] < c {
                                        ids[row + b] = ids[row + b - 1]; counts[row + b] = counts[row + b - 1]
                                        b -= 1
                                    }
                                    ids[row + b] = v; counts[row + b] = c
                                    kept = min(topT, kept + 1)
                                }
                                if hard.count > 0 {
                                    // The whole ranking (only when a hard band is asked for).
                                    ranked.removeAll(keepingCapacity: true)
                                    k = 0
                                    while k < slice.count {
                                        let v = slice[k]
                                        var c: Int32 = 0
                                        while k < slice.count && slice[k] == v { c += 1; k += 1 }
                                        if v != s { ranked.append((v, c)) }
                                    }
                                    let width = min(hard.to, ranked.count) - hard.from
                                    if width > 0 {
                                        ranked.sort { $0.count != $1.count ? $0.count > $1.count : $0.id < $1.id }
                                        let m = min(hard.count, width)
                                        for j in 0..<m {
                                            result.hard[hardBase + i * hard.count + j] =
                                                ranked[hard.from + j * width / m].id
                                        }
                                    }
                                }
                                var total: Int32 = 0
                                for j in 0..<kept { total += counts[row + j] }
                                for j in 0..<kept { weights[row + j] = Float(counts[row + j]) / Float(total) }
                            }
                        }
                    }
                }
            }
        }
    }
}

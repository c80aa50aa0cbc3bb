import Artifacts
import Collective
import EventData
import Events
import Foundation
import Graph

/// This rank's pins for PinSage: content features and top-T importance neighbours of the pins
/// it owns (`GraphPartition.pinOwner`). Rows of other pins are fetched from their owners with
/// collectives (`fetchContent`, `fetchNeighbors`, `fetch`); no rank holds the whole graph.
///
/// Shapes: `ids` (n,) sorted; `content` (n, dIn); `neighborIDs` (n, T) −1 padded;
/// `neighborWeights` (n, T) (0 on padding); `hardIDs` (n, H) −1 padded (the walks' hard-negative
/// band by personalised PageRank, hardest first; H = 0 without one).
public final class NodeStore {
    public let comm: Communicator
    public let t: Int
    public let dIn: Int
    public private(set) var ids: [Int64]
    public private(set) var content: [Float]
    public private(set) var neighborIDs: [Int64]
    public private(set) var neighborWeights: [Float]
    public let h: Int
    public private(set) var hardIDs: [Int64]
    /// Sequence neighbours (width `s`, 0 without): the pins saved right before or after this
    /// one by the same user (`SequencePairs`), top `s` by weight, −1 padded; weights sum to 1.
    public let s: Int
    public private(set) var sequenceIDs: [Int64]
    public private(set) var sequenceWeights: [Float]

    /// Builds a store from rows held anywhere: `contentIDs`/`content` (rows of width `dIn`) and
    /// `neighborPins`/`neighborIDs`/`neighborWeights` (rows of width `t`); both are routed to the
    /// pins' owners (collective). Every neighbour row must belong to a pin with content.
    /// `hardIDs` (rows of width `h`, aligned with `neighborPins`) is the optional hard band;
    /// `sequencePins`/`sequenceIDs`/`sequenceWeights` (rows of width `s`) the optional sequence
    /// neighbours.
    public init(
        comm: Communicator, dIn: Int, t: Int, contentIDs: [Int64], content: [Float], neighborPins: [Int64],
        neighborIDs: [Int64], neighborWeights: [Float], h: Int = 0, hardIDs: [Int64] = [], s: Int = 0,
        sequencePins: [Int64] = [], sequenceIDs: [Int64] = [], sequenceWeights: [Float] = []
    ) throws {
        self.comm = comm
        self.dIn = dIn
        self.t = t
        self.h = h
        self.s = s
        precondition(
            sequenceIDs.count == sequencePins.count * s && sequenceWeights.count == sequenceIDs.count,
            "sequence rows are not (rows, s)")
        precondition(hardIDs.count == neighborPins.count * h, "hardIDs is not (neighbour rows, h)")
        let p = comm.size
        let (cIDs, cRows) = try Self.routeRows(
            contentIDs, content, width: dIn, dest: contentIDs.map { GraphPartition.pinOwner($0, ranks: p) }, comm: comm)
        let (nPins, nIDs) = try Self.routeRows(
            neighborPins, neighborIDs, width: t, dest: neighborPins.map { GraphPartition.pinOwner($0, ranks: p) },
            comm: comm)
        let (_, nW) = try Self.routeRows(
            neighborPins, neighborWeights, width: t, dest: neighborPins.map { GraphPartition.pinOwner($0, ranks: p) },
            comm: comm)
        let (_, nH) =
            h > 0
            ? try Self.routeRows(
                neighborPins, hardIDs, width: h, dest: neighborPins.map { GraphPartition.pinOwner($0, ranks: p) },
                comm: comm) : ([], [])
        let sDest = sequencePins.map { GraphPartition.pinOwner($0, ranks: p) }
        let (sPins, sIDs) =
            s > 0 ? try Self.routeRows(sequencePins, sequenceIDs, width: s, dest: sDest, comm: comm) : ([], [])
        let (_, sW) =
            s > 0 ? try Self.routeRows(sequencePins, sequenceWeights, width: s, dest: sDest, comm: comm) : ([], [])
        let order = cIDs.indices.sorted { cIDs[$0] < cIDs[$1] }
        ids = order.map { cIDs[$0] }
        for i in 1..<max(1, ids.count) where ids[i] == ids[i - 1] {
            throw GraphError("pin \(ids[i]) has two content rows")
        }
        self.content = [Float](repeating: 0, count: ids.count * dIn)
        for (r, i) in order.enumerated() { for c in 0..<dIn { self.content[r * dIn + c] = cRows[i * dIn + c] } }
        self.neighborIDs = [Int64](repeating: -1, count: ids.count * t)
        self.neighborWeights = [Float](repeating: 0, count: ids.count * t)
        self.hardIDs = [Int64](repeating: -1, count: ids.count * h)
        var index: [Int64: Int] = [:]
        for (r, id) in ids.enumerated() { index[id] = r }
        for (i, pin) in nPins.enumerated() {
            guard let r = index[pin] else {
                throw GraphError("neighbour row of pin \(pin) but the pin has no content row (dangling id)")
            }
            for k in 0..<t {
                self.neighborIDs[r * t + k] = nIDs[i * t + k]
                self.neighborWeights[r * t + k] = nW[i * t + k]
            }
            for k in 0..<h { self.hardIDs[r * h + k] = nH[i * h + k] }
        }
        self.sequenceIDs = [Int64](repeating: -1, count: ids.count * s)
        self.sequenceWeights = [Float](repeating: 0, count: ids.count * s)
        for (i, pin) in sPins.enumerated() {
            guard let r = index[pin] else {
                throw GraphError("sequence row of pin \(pin) but the pin has no content row (dangling id)")
            }
            for k in 0..<s {
                self.sequenceIDs[r * s + k] = sIDs[i * s + k]
                self.sequenceWeights[r * s + k] = sW[i * s + k]
            }
        }
    }

    /// Row of `id` on this rank, or nil.
    public func row(of id: Int64) -> Int? {
        var lo = 0, hi = ids.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if ids[mid] < id { lo = mid + 1 } else { hi = mid }
        }
        return lo < ids.count && ids[lo] == id ? lo : nil
    }

    /// Collective: rows of width `width` for `ids` (any rank's pins), answered by each id's owner
    /// with `answer(localRow, &out)` appending `width` values. Returns (ids.count, width) values.
    public func fetch<V: MPIScalar & AdditiveArithmetic>(_ ids: [Int64], width: Int, answer: (Int, inout [V]) -> Void)
        throws -> [V]
    {
        let p = comm.size
        let dest = ids.map { GraphPartition.pinOwner($0, ranks: p) }
        var counts = [Int](repeating: 0, count: p)
        for d in dest { counts[d] += 1 }
        var start = [Int](repeating: 0, count: p)
        for r in 1..<max(1, p) { start[r] = start[r - 1] + counts[r - 1] }
        var order = [Int](repeating: 0, count: ids.count)
        for (i, d) in dest.enumerated() { order[start[d]] = i; start[d] += 1 }
        let send = order.map { ids[$0] }
        let (asked, askedCounts) = p == 1 ? (send, counts) : try comm.alltoallv(send, sendCounts: counts)
        var reply = [V]()
        reply.reserveCapacity(asked.count * width)
        var missing: Int64? = nil
        for id in asked {
            if let r = row(of: id) {
                answer(r, &reply)
            } else {
                missing = missing ?? id
                reply += [V](repeating: V.zero, count: width)
            }
        }
        let failed = try comm.allreduce(missing == nil ? 0 : 1, op: .max)
        if failed == 1 {
            throw GraphError(
                missing.map { "rank \(comm.rank): pin \($0) asked for but not held by its owner (dangling id)" }
                    ?? "a pin id asked for by another rank is unknown (dangling id)")
        }
        let back = p == 1 ? reply : try comm.alltoallv(reply, sendCounts: askedCounts.map { $0 * width }).values
        var out = [V](repeating: V.zero, count: ids.count * width)
        for (j, i) in order.enumerated() {
            for c in 0..<width { out[i * width + c] = back[j * width + c] }
        }
        return out
    }

    /// Collective: content rows (ids.count, dIn).
    public func fetchContent(_ ids: [Int64]) throws -> [Float] {
        try fetch(ids, width: dIn) { r, out in out.append(contentsOf: content[r * dIn..<(r + 1) * dIn]) }
    }

    /// Collective: neighbour ids and weights (ids.count, T).
    public func fetchNeighbors(_ ids: [Int64]) throws -> (ids: [Int64], weights: [Float]) {
        let n = try fetch(ids, width: t) { r, out in out.append(contentsOf: neighborIDs[r * t..<(r + 1) * t]) }
        let w = try fetch(ids, width: t) { r, out in out.append(contentsOf: neighborWeights[r * t..<(r + 1) * t]) }
        return (n, w)
    }

    /// Collective: sequence neighbour ids and weights (ids.count, s).
    public func fetchSequence(_ ids: [Int64]) throws -> (ids: [Int64], weights: [Float]) {
        let n = try fetch(ids, width: s) { r, out in out.append(contentsOf: sequenceIDs[r * s..<(r + 1) * s]) }
        let w = try fetch(ids, width: s) { r, out in out.append(contentsOf: sequenceWeights[r * s..<(r + 1) * s]) }
        return (n, w)
    }

    /// Collective: hard-negative bands (ids.count, H).
    public func fetchHard(_ ids: [Int64]) throws -> [Int64] {
        try fetch(ids, width: h) { r, out in out.append(contentsOf: hardIDs[r * h..<(r + 1) * h]) }
    }

    /// Collective: sends row i (`ids[i]`, `values[i·width ..< (i+1)·width]`) to rank `dest[i]`.
    public static func routeRows<V: MPIScalar>(
        _ ids: [Int64], _ values: [V], width: Int, dest: [Int], comm: Communicator
    ) throws -> ([Int64], [V]) {
        let p = comm.size
        var counts = [Int](repeating: 0, count: p)
        for d in dest { counts[d] += 1 }
        var start = [Int](repeating: 0, count: p)
        for r in 1..<max(1, p) { start[r] = start[r - 1] + counts[r - 1] }
        var order = [Int](repeating: 0, count: ids.count)
        for (i, d) in dest.enumerated() { order[start[d]] = i; start[d] += 1 }
        let sendIDs = order.map { ids[$0] }
        var sendValues = [V]()
        sendValues.reserveCapacity(values.count)
        for i in order { sendValues.append(contentsOf: values[i * width..<(i + 1) * width]) }
        if p == 1 { return (sendIDs, sendValues) }
        let (rIDs, _) = try comm.alltoallv(sendIDs, sendCounts: counts)
        let (rValues, _) = try comm.alltoallv(sendValues, sendCounts: counts.map { $0 * width })
        return (rIDs, rValues)
    }

    /// Collective: loads content from the `pins` entity of a dataset run (the `embedding`
    /// columns, plus a multi-hot of `tags` when `tags` is true; the tag vocabulary is the global
    /// max tag + 1) and neighbours from a walks run (artifact `neighbors`). With `sequence`, also
    /// the sequence neighbours from the dataset's save events (`SequencePairs.build`).
    public static func load(
        data: URL, dataRun: String? = nil, walks: URL, walksRun: String? = nil, tags: Bool,
        sequence: SequencePairs.Parameters? = nil, comm: Communicator
    ) throws -> NodeStore {
        let reader = try DatasetReader(root: data, runID: dataRun)
        var ids = [Int64](), emb = [Float](), tagRows = [Int32]()
        var d = 0
        for path in try reader.myShards("pins", comm: comm) {
            let table = try DatasetReader.readShard(path, entity: "pins")
            ids += table.i64("pin_id")
            let e = table.float32["embedding"]!
            d = table.count > 0 ? e.count / table.count : d
            emb += e
            if tags {
                guard let tg = table.int32["tags"] else {
                    throw GraphError("\(path): /pins has no tags column (run without --tags)")
                }
                tagRows += tg
            }
        }
        d = try comm.allreduce(d, op: .max)
        let vocabulary = tags ? Int(try comm.allreduce(tagRows.max() ?? -1, op: .max)) + 1 : 0
        let dIn = d + vocabulary
        var content = [Float](repeating: 0, count: ids.count * dIn)
        for i in 0..<ids.count {
            for c in 0..<d { content[i * dIn + c] = emb[i * d + c] }
            if tags {
                for k in 0..<8 where tagRows[i * 8 + k] >= 0 { content[i * dIn + d + Int(tagRows[i * 8 + k])] = 1 }
            }
        }
        emb = []; tagRows = []
        let run = try PublishedRun.open(root: walks, runID: walksRun)
        var np = [Int64](), nid = [Int64](), nw = [Float](), hard = [Int64]()
        var t = 0, h = 0
        for (i, path) in try run.paths(of: "neighbors").enumerated() where i % comm.size == comm.rank {
            let n = try ImportanceNeighbors.read(path: path)
            t = n.t
            np += n.pins; nid += n.ids; nw += n.weights
            if !n.pins.isEmpty { h = n.h }
            hard += n.hard
        }
        t = try comm.allreduce(t, op: .max)
        h = try comm.allreduce(h, op: .max)
        guard hard.count == np.count * h else {
            throw GraphError("\(walks.path): neighbour shards disagree on the hard-band width")
        }
        let seq =
            try sequence.map { try SequencePairs.build(data: data, dataRun: dataRun, parameters: $0, comm: comm) }
            ?? SequencePairs.Rows(width: 0)
        return try NodeStore(
            comm: comm, dIn: dIn, t: t, contentIDs: ids, content: content, neighborPins: np, neighborIDs: nid,
            neighborWeights: nw, h: h, hardIDs: hard, s: seq.width, sequencePins: seq.pins, sequenceIDs: seq.ids,
            sequenceWeights: seq.weights)
    }
}

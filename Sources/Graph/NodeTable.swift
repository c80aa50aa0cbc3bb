/// Open-addressing (linear probing) map from the node ids of one CSR side to their neighbour
/// spans, built once per walk job so that a walker step costs one probe (usually one cache line)
/// instead of a binary search over the ids plus a read of `offsets`.
///
/// The first slot comes from the top 32 bits of the same `GraphPartition` hash that decides the
/// owner (multiply-shift range reduction onto the table's 64-byte lines), so a step hashes the
/// next node once for both. A slot is 16 B: the id and `start << 24 | degree` (degrees ≥ 2²⁴ − 1
/// are kept exactly in `largeDegrees`). There are about 4n slots (64 B per node of the shard,
/// three quarters of them empty) in cache-line-aligned lines of four, and probing starts at the
/// beginning of a line, so a lookup almost always ends in the first line — one cache miss, which
/// the walker prefetches — and `find` compares its four slots with selects.
/// With one node per line on average (Poisson), about 0.4 % of the nodes are pushed out of their
/// first line, against about 4 % with 2n slots, and each of those costs a second, dependent miss:
/// 4n slots made the walk step phase about 17 % faster (1.41–1.63 s against 1.72–1.95 s in three
/// alternating pairs, 50 M edges on one rank) and did not raise the walk job's peak memory (the
/// graph build's is higher). (Starting at any slot and checking two, a lookup needed a second
/// miss about one time in seven.)
struct NodeTable {
    /// One slot: `id` (`Int64.min` = empty) and `span` = start << 24 | min(degree, 2²⁴ − 1).
    struct Slot {
        var id: Int64
        var span: UInt64
    }

    static let degreeBits: UInt64 = 24
    static let degreeMask: UInt64 = (1 << 24) - 1

    /// Slots per line (one 64-byte cache line).
    static let line = 4

    /// `size` slots (64-byte aligned) plus one line that stays empty.
    let slots: SlotStorage
    /// Number of slots probed, a multiple of `line` (first slot = line · ((hash >> 32) · lines >> 32)).
    let size: Int
    /// Exact degrees of the nodes whose degree does not fit in 24 bits.
    private(set) var largeDegrees: [Int64: Int64] = [:]

    /// Table of `csr`'s rows; `boardSide` selects the board hash (`GraphPartition.boardOwner`).
    init(_ csr: CSR, boardSide: Bool) throws {
        size = max(16, (4 * csr.count + Self.line - 1) / Self.line * Self.line)  // load factor ≤ 0.25 (see above)
        guard csr.edgeCount < 1 << 40, size < 1 << 32 else {
            throw GraphError("more than 2⁴⁰ edges or 2³¹ nodes on one rank")
        }
        let storage = SlotStorage(count: size + Self.line)
        let slots = storage.pointer
        let size = self.size
        // Blocks of nodes: first the lines they start at are all read (independent misses, in
        // flight together), then the nodes are inserted into lines now in cache. One insert at a
        // time would wait for each line in turn.
        let block = 512
        var first = [Int](repeating: 0, count: block)
        var touched: Int64 = 0
        var lo = 0
        while lo < csr.count {
            let hi = min(csr.count, lo + block)
            for i in lo..<hi {
                let id = csr.ids[i]
                let s = Self.index(GraphPartition.hash(boardSide ? ~id : id), size)
                first[i - lo] = s
                touched &+= slots[s].id
            }
            for i in lo..<hi {
                let id = csr.ids[i]
                guard id != .min else { throw GraphError("node id \(id) is reserved (Int64.min)") }
                var s = first[i - lo]
                while slots[s].id != .min { s = s + 1 == size ? 0 : s + 1 }
                let degree = csr.offsets[i + 1] - csr.offsets[i]
                if UInt64(degree) >= Self.degreeMask { largeDegrees[id] = degree }
                slots[s] = Slot(
                    id: id, span: UInt64(csr.offsets[i]) << Self.degreeBits | min(UInt64(degree), Self.degreeMask))
            }
            lo = hi
        }
        storage.touched = touched  // keeps the reads of the first pass
        self.slots = storage
    }

    /// The first slot probed for hash `h` in a table of `size` slots: the start of a line.
    @inline(__always)
    static func index(_ h: UInt64, _ size: Int) -> Int {
        Int(truncatingIfNeeded: ((h >> 32) &* UInt64(size >> 2)) >> 32) << 2
    }

    /// (start, degree) of a slot found by `find`.
    @inline(__always)
    func span(_ slot: Slot) -> (start: Int64, degree: Int64) {
        let d = slot.span & Self.degreeMask
        return (
            Int64(slot.span >> Self.degreeBits), d == Self.degreeMask ? largeDegrees[slot.id]! : Int64(d)
        )
    }
}

/// The slots of a `NodeTable`: 64-byte aligned (a line of four slots is one cache line), advised
/// for huge pages, initialised empty.
final class SlotStorage: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<NodeTable.Slot>
    let count: Int
    /// Sum of the ids read ahead while the table was built (kept so that those reads stay).
    var touched: Int64 = 0

    init(count: Int) {
        self.count = count
        let bytes = count * MemoryLayout<NodeTable.Slot>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        HugePages.advise(raw, bytes: bytes)
        pointer = raw.bindMemory(to: NodeTable.Slot.self, capacity: count)
        pointer.initialize(repeating: NodeTable.Slot(id: .min, span: 0), count: count)
    }

    deinit { pointer.deallocate() }

    /// Calls `body` with the slots (as `Array.withUnsafeBufferPointer`).
    @inline(__always)
    func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<NodeTable.Slot>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: pointer, count: count))
    }
}

extension UnsafePointer where Pointee == NodeTable.Slot {
    /// The slot among the four at `self` whose id is `id`, or the last of them when none is
    /// (selects only: no branch on the loaded ids).
    @inline(__always)
    func lineHit(_ id: Int64) -> NodeTable.Slot {
        let a = self[0], b = self[1], c = self[2], d = self[3]
        let cd = c.id == id ? c : d
        let bcd = b.id == id ? b : cd
        return a.id == id ? a : bcd
    }
}

extension UnsafeBufferPointer where Element == NodeTable.Slot {
    /// The slot of `id` whose hash is `h`, or nil. The first line's four slots are compared
    /// with selects (no branch on the loaded ids); longer probe sequences loop.
    @inline(__always)
    func find(_ id: Int64, hash h: UInt64, size: Int) -> NodeTable.Slot? {
        let s = NodeTable.index(h, size)
        let hit = (baseAddress.unsafelyUnwrapped + s).lineHit(id)
        if hit.id == id { return hit }
        var t = s
        while true {
            let slot = self[t]
            if slot.id == id { return slot }
            if slot.id == .min { return nil }
            t = t + 1 == size ? 0 : t + 1
        }
    }
}

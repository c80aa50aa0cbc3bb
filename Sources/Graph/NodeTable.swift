/// Open-addressing (linear probing) map from the node ids of one CSR side to their neighbour
/// spans, built once per walk job so that a walker step costs one probe (usually one cache line)
/// instead of a binary search over the ids plus a read of `offsets`.
///
/// The slot index comes from the top 32 bits of the same `GraphPartition` hash that decides the
/// owner (multiply-shift range reduction), so a step hashes the next node once for both. A slot
/// is 16 B: the id and `start << 24 | degree` (degrees ≥ 2²⁴ − 1 are kept exactly in
/// `largeDegrees`). There are 2n slots (32 B per node of the shard, half of them empty), so a
/// lookup almost always ends in the first two slots, which `find` checks without a
/// data-dependent branch.
struct NodeTable {
    /// One slot: `id` (`Int64.min` = empty) and `span` = start << 24 | min(degree, 2²⁴ − 1).
    struct Slot {
        var id: Int64
        var span: UInt64
    }

    static let degreeBits: UInt64 = 24
    static let degreeMask: UInt64 = (1 << 24) - 1

    /// `size` slots plus one that stays empty, so that `find` may read slot s + 1 for any s.
    private(set) var slots: [Slot]
    /// Number of slots probed (slot index = (hash >> 32) · size >> 32).
    let size: Int
    /// Exact degrees of the nodes whose degree does not fit in 24 bits.
    private(set) var largeDegrees: [Int64: Int64] = [:]

    /// Table of `csr`'s rows; `boardSide` selects the board hash (`GraphPartition.boardOwner`).
    init(_ csr: CSR, boardSide: Bool) throws {
        size = max(16, 2 * csr.count)  // load factor ≤ 0.5
        guard csr.edgeCount < 1 << 40, size < 1 << 32 else {
            throw GraphError("more than 2⁴⁰ edges or 2³¹ nodes on one rank")
        }
        let count = size + 1
        var slots = [Slot](unsafeUninitializedCapacity: count) { buffer, initialized in
            HugePages.advise(buffer.baseAddress, bytes: count * MemoryLayout<Slot>.stride)
            buffer.initialize(repeating: Slot(id: .min, span: 0))
            initialized = count
        }
        let size = self.size
        for i in 0..<csr.count {
            let id = csr.ids[i]
            guard id != .min else { throw GraphError("node id \(id) is reserved (Int64.min)") }
            let h = GraphPartition.hash(boardSide ? ~id : id)
            var s = Self.index(h, size)
            while slots[s].id != .min { s = s + 1 == size ? 0 : s + 1 }
            let degree = csr.offsets[i + 1] - csr.offsets[i]
            if UInt64(degree) >= Self.degreeMask { largeDegrees[id] = degree }
            slots[s] = Slot(
                id: id, span: UInt64(csr.offsets[i]) << Self.degreeBits | min(UInt64(degree), Self.degreeMask))
        }
        self.slots = slots
    }

    /// The first slot probed for hash `h` in a table of `size` slots.
    @inline(__always)
    static func index(_ h: UInt64, _ size: Int) -> Int { Int(truncatingIfNeeded: ((h >> 32) &* UInt64(size)) >> 32) }

    /// (start, degree) of a slot found by `find`.
    @inline(__always)
    func span(_ slot: Slot) -> (start: Int64, degree: Int64) {
        let d = slot.span & Self.degreeMask
        return (
            Int64(slot.span >> Self.degreeBits), d == Self.degreeMask ? largeDegrees[slot.id]! : Int64(d)
        )
    }
}

extension UnsafeBufferPointer where Element == NodeTable.Slot {
    /// The slot of `id` whose hash is `h`, or nil. The first two candidate slots are compared
    /// with a select (no branch on the loaded ids); longer probe sequences loop.
    @inline(__always)
    func find(_ id: Int64, hash h: UInt64, size: Int) -> NodeTable.Slot? {
        let s = NodeTable.index(h, size)
        let a = self[s], b = self[s + 1]
        let hit = a.id == id ? a : b
        if hit.id == id { return hit }
        var t = s + 1 == size ? 0 : s + 1
        while true {
            let slot = self[t]
            if slot.id == id { return slot }
            if slot.id == .min { return nil }
            t = t + 1 == size ? 0 : t + 1
        }
    }
}

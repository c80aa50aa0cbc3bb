/// Open-addressing (linear probing) map from the node ids of one CSR side to their neighbour
/// spans, built once per walk job so that a walker step costs one probe (usually one cache line)
/// instead of a binary search over the ids plus a read of `offsets`.
///
/// The slot index is the top bits of the same `GraphPartition` hash that decides the owner, so
/// a step hashes the next node once for both. A slot is 16 B: the id and `start << 24 | degree`
/// (degrees ≥ 2²⁴ − 1 are kept exactly in `largeDegrees`). At most half the slots are used
/// (slots = the power of two ≥ 2n: 32–64 B per node of the shard), so a lookup almost always
/// ends in the first two slots, which `find` checks without a data-dependent branch.
struct NodeTable {
    /// One slot: `id` (`Int64.min` = empty) and `span` = start << 24 | min(degree, 2²⁴ − 1).
    struct Slot {
        var id: Int64
        var span: UInt64
    }

    static let degreeBits: UInt64 = 24
    static let degreeMask: UInt64 = (1 << 24) - 1

    /// 2^bits slots plus one that stays empty, so that `find` may read slot s + 1 for any s.
    private(set) var slots: [Slot]
    /// Slot index = hash >> shift.
    let shift: UInt64
    let mask: Int
    /// Exact degrees of the nodes whose degree does not fit in 24 bits.
    private(set) var largeDegrees: [Int64: Int64] = [:]

    /// Table of `csr`'s rows; `boardSide` selects the board hash (`GraphPartition.boardOwner`).
    init(_ csr: CSR, boardSide: Bool) throws {
        var bits = 4
        while (1 << bits) < csr.count * 2 { bits += 1 }  // load factor ≤ 0.5
        shift = UInt64(64 - bits)
        mask = (1 << bits) - 1
        guard csr.edgeCount < 1 << 40 else { throw GraphError("more than 2⁴⁰ edges on one rank") }
        var slots = [Slot](repeating: Slot(id: .min, span: 0), count: (1 << bits) + 1)
        let shift = self.shift, mask = self.mask
        for i in 0..<csr.count {
            let id = csr.ids[i]
            guard id != .min else { throw GraphError("node id \(id) is reserved (Int64.min)") }
            let h = GraphPartition.hash(boardSide ? ~id : id)
            var s = Int(truncatingIfNeeded: h >> shift)
            while slots[s].id != .min { s = (s + 1) & mask }
            let degree = csr.offsets[i + 1] - csr.offsets[i]
            if UInt64(degree) >= Self.degreeMask { largeDegrees[id] = degree }
            slots[s] = Slot(
                id: id, span: UInt64(csr.offsets[i]) << Self.degreeBits | min(UInt64(degree), Self.degreeMask))
        }
        self.slots = slots
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

extension UnsafeBufferPointer where Element == NodeTable.Slot {
    /// The slot of `id` whose hash is `h`, or nil. The first two candidate slots are compared
    /// with a select (no branch on the loaded ids); longer probe sequences loop.
    @inline(__always)
    func find(_ id: Int64, hash h: UInt64, shift: UInt64, mask: Int) -> NodeTable.Slot? {
        let s = Int(truncatingIfNeeded: h >> shift)
        let a = self[s], b = self[s + 1]
        let hit = a.id == id ? a : b
        if hit.id == id { return hit }
        var t = (s + 1) & mask
        while true {
            let slot = self[t]
            if slot.id == id { return slot }
            if slot.id == .min { return nil }
            t = (t + 1) & mask
        }
    }
}

import Collective
import Foundation

/// How far two versions of the same items' embeddings moved: the mean cosine between each
/// item's base vector and its new vector, over the items in both versions. 1 is unchanged; a
/// retrained model in a new space gives about 0 until mapped (`EmbeddingAdapter`).
public struct EmbeddingDrift: Sendable, Codable, Equatable {
    /// Mean cosine over the common items (0 without any), in [−1, 1].
    public var meanCosine: Double
    /// Items in both versions, only in the base, only in the new one.
    public var common: Int, baseOnly: Int, newOnly: Int

    /// The drift of (ids, vectors (n, d) row-major) pairs (one process). Ids are distinct.
    public init(baseIDs: [Int64], base: [Float], newIDs: [Int64], new: [Float], d: Int) {
        let (s, c) = Self.sums(baseIDs: baseIDs, base: base, newIDs: newIDs, new: new, d: d)
        self.init(
            meanCosine: s / max(c, 1), common: Int(c), baseOnly: baseIDs.count - Int(c), newOnly: newIDs.count - Int(c))
    }

    /// Collective: the drift over every rank's rows of both versions, spread over the ranks in
    /// any way: each row goes to the rank owning its id (a hash of it, `alltoallv`), which joins
    /// the two versions. The same as the one-process result up to the order of the sums
    /// (memory: the rank's rows of each version).
    public init(baseIDs: [Int64], base: [Float], newIDs: [Int64], new: [Float], d: Int, comm: Communicator) throws {
        let (bi, bv) = try Self.route(ids: baseIDs, vectors: base, d: d, comm: comm)
        let (ni, nv) = try Self.route(ids: newIDs, vectors: new, d: d, comm: comm)
        let (s, c) = Self.sums(baseIDs: bi, base: bv, newIDs: ni, new: nv, d: d)
        var totals = [s, c, Double(baseIDs.count), Double(newIDs.count)]
        try comm.allreduce(&totals)
        self.init(
            meanCosine: totals[0] / max(totals[1], 1), common: Int(totals[1]), baseOnly: Int(totals[2] - totals[1]),
            newOnly: Int(totals[3] - totals[1]))
    }

    /// From the figures themselves.
    public init(meanCosine: Double, common: Int, baseOnly: Int, newOnly: Int) {
        self.meanCosine = meanCosine
        self.common = common
        self.baseOnly = baseOnly
        self.newOnly = newOnly
    }

    /// The cosine of two vectors (0 when either is zero).
    public static func cosine(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for (x, y) in zip(a, b) {
            dot += Double(x) * Double(y)
            na += Double(x) * Double(x)
            nb += Double(y) * Double(y)
        }
        return na > 0 && nb > 0 ? dot / (na * nb).squareRoot() : 0
    }

    static func sums(baseIDs: [Int64], base: [Float], newIDs: [Int64], new: [Float], d: Int) -> (Double, Double) {
        precondition(base.count == baseIDs.count * d && new.count == newIDs.count * d, "EmbeddingDrift: bad shapes")
        let row = Dictionary(baseIDs.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        var s = 0.0, c = 0.0
        for (j, id) in newIDs.enumerated() {
            guard let i = row[id] else { continue }
            s += cosine(base[i * d..<(i + 1) * d], new[j * d..<(j + 1) * d])
            c += 1
        }
        return (s, c)
    }

    /// SplitMix64 of the id: the owner rank is this modulo the rank count.
    static func owner(_ id: Int64, ranks: Int) -> Int {
        var z = UInt64(bitPattern: id) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((z ^ (z >> 31)) % UInt64(ranks))
    }

    static func route(ids: [Int64], vectors: [Float], d: Int, comm: Communicator) throws -> ([Int64], [Float]) {
        if comm.size == 1 { return (ids, vectors) }
        let dest = ids.map { owner($0, ranks: comm.size) }
        let order = ids.indices.sorted { (dest[$0], $0) < (dest[$1], $1) }
        var counts = [Int](repeating: 0, count: comm.size)
        for r in dest { counts[r] += 1 }
        let (rid, _) = try comm.alltoallv(order.map { ids[$0] }, sendCounts: counts)
        let (rv, _) = try comm.alltoallv(
            order.flatMap { vectors[$0 * d..<($0 + 1) * d] }, sendCounts: counts.map { $0 * d })
        return (rid, rv)
    }
}

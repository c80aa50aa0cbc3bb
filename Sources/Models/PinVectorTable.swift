import Collective
import Foundation

/// One rank's rows of a pin-vector table that is sharded over the ranks (each pin on exactly
/// one rank), answering collective lookups: the content embeddings of a dataset, or the night's
/// PinSage vectors. Each row carries an optional integer tag (the pin's category, −1 if none).
public struct PinVectorTable: Sendable {
    /// This rank's pins (n), their vectors (n × d, row-major) and tags (n).
    public let ids: [Int64]
    public let vectors: [Float]
    public let tags: [Int32]
    /// Vector width.
    public let d: Int
    private let row: [Int64: Int]

    /// - Precondition: `vectors.count == ids.count × d` and `tags` is empty (all −1) or has
    ///   `ids.count` entries. A pin listed twice keeps its first row.
    public init(ids: [Int64], vectors: [Float], d: Int, tags: [Int32] = []) {
        precondition(vectors.count == ids.count * d, "PinVectorTable: vectors must be ids.count × d")
        precondition(tags.isEmpty || tags.count == ids.count, "PinVectorTable: one tag per pin")
        self.ids = ids
        self.vectors = vectors
        self.d = d
        self.tags = tags.isEmpty ? [Int32](repeating: -1, count: ids.count) : tags
        row = Dictionary(ids.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The local row of `pin`, nil when another rank holds it.
    public func localRow(_ pin: Int64) -> Int? { row[pin] }

    /// Vectors `(pins.count × d)`, tags and whether some rank holds each of this rank's own
    /// `pins` — every rank passes its own list: the lists are allgathered, each rank fills the
    /// pins it holds, and one reduce-scatter returns each rank its part. Unknown pins get zeros,
    /// tag −1 and `known` false. Memory: O(Σ lists · d). Collective.
    public func lookupDistinct(_ pins: [Int64], comm: Communicator) throws -> (
        vectors: [Float], tags: [Int32], known: [Bool]
    ) {
        let (all, counts) = try comm.allgatherv(pins)
        let w = d + 2  // vector, then 1 (held), then the tag (exact in Float below 2^24)
        var mine = [Float](repeating: 0, count: all.count * w)
        for (i, p) in all.enumerated() {
            guard let r = row[p] else { continue }
            for j in 0..<d { mine[i * w + j] = vectors[r * d + j] }
            mine[i * w + d] = 1
            mine[i * w + d + 1] = Float(tags[r])
        }
        var back = [Float](repeating: 0, count: pins.count * w)
        try mine.withUnsafeBufferPointer { send in
            try back.withUnsafeMutableBufferPointer { receive in
                try comm.reduceScatter(send, into: receive, counts: counts.map { $0 * w })
            }
        }
        var v = [Float](repeating: 0, count: pins.count * d)
        var t = [Int32](repeating: -1, count: pins.count), known = [Bool](repeating: false, count: pins.count)
        for i in 0..<pins.count {
            for j in 0..<d { v[i * d + j] = back[i * w + j] }
            known[i] = back[i * w + d] > 0
            if known[i] { t[i] = Int32(back[i * w + d + 1]) }
        }
        return (v, t, known)
    }
}

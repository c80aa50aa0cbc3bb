import Linalg

/// A generated bipartite graph for benchmarks: edge e (global index) joins pin
/// ⌊P·u₁⌋ and board ⌊B·u₂²⌋ with (u₁, u₂) from the stream (seed, e), so board degrees are
/// skewed (low board ids are popular) and the graph is the same whatever the rank count.
public struct SyntheticGraph: Sendable {
    public var pins: Int, boards: Int, edges: Int, seed: UInt64

    public init(pins: Int, boards: Int, edges: Int, seed: UInt64 = 17) {
        self.pins = pins
        self.boards = boards
        self.edges = edges
        self.seed = seed
    }

    /// The edges of global indices `range` as (pin ids, board ids).
    public func edges(_ range: Range<Int>) -> (pins: [Int64], boards: [Int64]) {
        var p = [Int64](), b = [Int64]()
        p.reserveCapacity(range.count)
        b.reserveCapacity(range.count)
        for e in range {
            var rng = RandomStream(seed: seed, index: UInt64(e))
            let u1 = rng.uniform(), u2 = rng.uniform()
            p.append(Int64(Double(pins) * u1))
            b.append(Int64(Double(boards) * u2 * u2))
        }
        return (p, b)
    }

    /// Rank `rank`'s share of the edge indices out of `ranks`.
    public func share(rank: Int, ranks: Int) -> Range<Int> {
        (edges * rank / ranks)..<(edges * (rank + 1) / ranks)
    }
}

/// A pseudo-random permutation of `0 ..< n` in O(1) memory: a 4-round Feistel network over the
/// smallest power-of-4 domain ≥ n, keyed by (seed, epoch), with cycle walking back into range.
/// Every rank computes the same order without holding an array of n indices (so a rank's
/// memory stays proportional to its shard of the rows).
public struct EpochPermutation: Sendable {
    public let n: Int
    let halfBits: Int, mask: UInt64
    let keys: [UInt64]

    public init(n: Int, seed: UInt64, epoch: Int) {
        precondition(n >= 0, "EpochPermutation: n must be ≥ 0")
        self.n = n
        var bits = 1
        while (1 << (2 * bits)) < n { bits += 1 }
        halfBits = bits
        mask = (1 << UInt64(bits)) - 1
        keys = (0..<4).map { round in
            Self.mix(seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch + 1) &+ UInt64(round) &* 0xBF58_476D_1CE4_E5B9)
        }
    }

    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always) func encrypt(_ x: UInt64) -> UInt64 {
        var left = x >> UInt64(halfBits), right = x & mask
        for k in keys {
            let f = Self.mix(right ^ k) & mask
            (left, right) = (right, left ^ f)
        }
        return left << UInt64(halfBits) | right
    }

    /// The element at position `i` (0 ..< n) of the permuted order.
    public func callAsFunction(_ i: Int) -> Int {
        precondition(i >= 0 && i < n, "EpochPermutation: position \(i) outside 0..<\(n)")
        var x = encrypt(UInt64(i))
        while x >= UInt64(n) { x = encrypt(x) }
        return Int(x)
    }
}

import Foundation

/// A seeded pseudo-random stream (xoshiro256**), derived from (seed, rank, index) and never from
/// the clock, so that every result is reproducible and independent of how work is split.
///
/// Derive one stream per unit of work keyed by what identifies the work (a global item index,
/// a user id), not by the rank that happens to run it, when results must not depend on the
/// rank count.
public struct RandomStream: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    /// A stream for `(seed, rank, index)`; distinct triples give independent streams.
    public init(seed: UInt64, rank: UInt64 = 0, index: UInt64 = 0) {
        var x = SplitMix64(state: seed)
        var mixed = x.next()
        mixed ^= SplitMix64.mix(rank &+ 0x632B_E59B_D9B4_E019)
        mixed = SplitMix64.mix(mixed ^ SplitMix64.mix(index &+ 0x9E37_79B9_7F4A_7C15))
        var g = SplitMix64(state: mixed)
        s = (g.next(), g.next(), g.next(), g.next())
        if s == (0, 0, 0, 0) { s.0 = 1 }
    }

    /// The generator state, for checkpoints.
    public var state: [UInt64] { [s.0, s.1, s.2, s.3] }

    /// Restores a stream from `state` (four words from `state`).
    public init(state: [UInt64]) {
        precondition(state.count == 4, "RandomStream: state has 4 words")
        s = (state[0], state[1], state[2], state[3])
    }

    /// Next 64 random bits.
    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform `Float` in [0, 1) with 24 random bits.
    @inline(__always)
    public mutating func uniformFloat() -> Float { Float(next() >> 40) * 0x1.0p-24 }

    /// Uniform integer in `0 ..< n` (unbiased).
    public mutating func int(below n: Int) -> Int {
        precondition(n > 0, "int(below:) needs n > 0")
        return Int(next(upperBound: UInt64(n)))
    }

    /// Standard normal N(0, 1) (Box–Muller; one value per call).
    public mutating func normal() -> Double {
        var u1 = uniform()
        while u1 <= .leastNonzeroMagnitude { u1 = uniform() }
        let u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * .pi * u2)
    }

    /// N(mean, std²).
    public mutating func normal(mean: Double, std: Double) -> Double { mean + std * normal() }

    /// Exponential with the given rate (mean 1/rate).
    public mutating func exponential(rate: Double) -> Double {
        -Foundation.log(1 - uniform()) / rate
    }
}

/// SplitMix64, used only to expand seeds.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }
    static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Zipf distribution over ranks `1 ... n` with P(r) ∝ r^(-s), s > 0, s ≠ 1 allowed and s = 1
/// too. Sampling by rejection-inversion (Hörmann & Derflinger 1996): O(1) memory and expected
/// O(1) time per draw, so n may be billions.
public struct ZipfDistribution: Sendable {
    /// Number of ranks.
    public let n: Int
    /// Exponent.
    public let s: Double
    private let hX1: Double, hN: Double, threshold: Double

    public init(n: Int, exponent s: Double) {
        precondition(n >= 1 && s > 0, "Zipf needs n ≥ 1 and exponent > 0")
        self.n = n
        self.s = s
        hX1 = Self.h(1.5, s) - 1
        hN = Self.h(Double(n) + 0.5, s)
        threshold = 2 - Self.hInverse(Self.h(2.5, s) - Foundation.pow(2, -s), s)
    }

    // H(x) = ∫ x^-s, written with helpers that stay accurate when s → 1.
    static func h(_ x: Double, _ s: Double) -> Double {
        let logX = Foundation.log(x)
        return helper2((1 - s) * logX) * logX
    }
    static func hInverse(_ x: Double, _ s: Double) -> Double {
        var t = x * (1 - s)
        if t < -1 { t = -1 }
        return Foundation.exp(helper1(t) * x)
    }
    /// log(1 + x) / x, accurate near 0.
    static func helper1(_ x: Double) -> Double {
        abs(x) > 1e-8 ? Foundation.log1p(x) / x : 1 - x * (0.5 - x * (1.0 / 3 - 0.25 * x))
    }
    /// (exp(x) − 1) / x, accurate near 0.
    static func helper2(_ x: Double) -> Double {
        abs(x) > 1e-8 ? Foundation.expm1(x) / x : 1 + x * 0.5 * (1 + x * (1.0 / 3) * (1 + 0.25 * x))
    }

    /// One rank in `1 ... n` (1 is the most popular).
    public func sample(_ rng: inout RandomStream) -> Int {
        while true {
            let u = hN + rng.uniform() * (hX1 - hN)
            let x = Self.hInverse(u, s)
            var k = (x + 0.5).rounded(.down)
            if k < 1 { k = 1 } else if k > Double(n) { k = Double(n) }
            if k - x <= threshold || u >= Self.h(k + 0.5, s) - Foundation.exp(-Foundation.log(k) * s) {
                return Int(k)
            }
        }
    }
}

/// A categorical distribution over `0 ..< weights.count` with P(i) ∝ weights[i], sampled in O(1)
/// with Walker's alias method (O(n) to build).
public struct CategoricalDistribution: Sendable {
    private let probability: [Double]
    private let alias: [Int]

    /// Number of categories.
    public var count: Int { probability.count }

    /// Weights must be finite, non-negative, and not all zero.
    public init(weights: [Double]) {
        precondition(!weights.isEmpty, "Categorical needs at least one weight")
        precondition(weights.allSatisfy { $0.isFinite && $0 >= 0 }, "Categorical weights must be finite and ≥ 0")
        let total = weights.reduce(0, +)
        precondition(total > 0, "Categorical weights must not all be zero")
        let n = weights.count
        var prob = [Double](repeating: 0, count: n)
        var alias = [Int](repeating: 0, count: n)
        var scaled = weights.map { $0 * Double(n) / total }
        var small: [Int] = [], large: [Int] = []
        for (i, w) in scaled.enumerated() { if w < 1 { small.append(i) } else { large.append(i) } }
        while !large.isEmpty, let s = small.popLast() {
            let l = large[large.count - 1]
            prob[s] = scaled[s]
            alias[s] = l
            scaled[l] -= 1 - scaled[s]
            if scaled[l] < 1 {
                large.removeLast()
                small.append(l)
            }
        }
        for i in large + small { prob[i] = 1 }
        probability = prob
        self.alias = alias
    }

    /// One category index.
    public func sample(_ rng: inout RandomStream) -> Int {
        let i = rng.int(below: probability.count)
        return rng.uniform() < probability[i] ? i : alias[i]
    }
}

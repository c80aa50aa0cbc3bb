/// The counter-based random numbers of one walker: draw `j` of step `s` is the SplitMix64
/// output at counter `2s + j` of a stream keyed by (seed, start pin, walk). Nothing is stored
/// between steps, so a walker carries only its step number across ranks and the draws are the
/// same whatever rank takes the step.
struct WalkerStream {
    /// SplitMix64's output function (Steele, Lea & Flood 2014).
    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The stream key of walk `walk` from pin `start`.
    @inline(__always)
    static func key(seed: UInt64, start: Int64, walk: UInt64) -> UInt64 {
        mix(mix(seed &+ 0x632B_E59B_D9B4_E019) ^ mix(UInt64(bitPattern: start) &+ 0x9E37_79B9_7F4A_7C15) &+ walk)
    }

    /// 64 random bits: draw `j` (0 or 1) of step `step`.
    @inline(__always)
    static func draw(_ key: UInt64, step: UInt64, _ j: UInt64) -> UInt64 {
        mix(key &+ ((step << 1) | j) &* 0x9E37_79B9_7F4A_7C15)
    }

    /// Uniform in `0 ..< n` from 64 random bits (multiply-high; bias ≤ n / 2⁶⁴).
    @inline(__always)
    static func below(_ n: Int64, _ bits: UInt64) -> Int64 {
        Int64(truncatingIfNeeded: bits.multipliedFullWidth(by: UInt64(truncatingIfNeeded: n)).high)
    }
}

/// Sorting of edge pairs by (source, target) for `CSR.from`: an LSD radix sort.
///
/// The 128-bit key (s, t), each with its sign bit flipped so that unsigned byte order is signed
/// order, is sorted one byte at a time from t's lowest byte to s's highest, each pass a stable
/// counting scatter into a second buffer. Bytes that are the same in every pair (ids of a few
/// million use 3 of 8 bytes) are skipped: one read of the pairs finds the bytes that vary, a
/// second counts the digits of all of them, then one scatter per varying byte. Linear in the
/// pairs; it needs a second buffer of the same size. Small inputs use `Array.sort`.
enum EdgeSort {
    static func sort(_ pairs: inout [EdgePair]) {
        let n = pairs.count
        if n < 1 << 12 {
            pairs.sort()
            return
        }
        let flip: UInt64 = 1 << 63
        // Bytes that vary: bit b of `varies` (0–7 for t's bytes, 8–15 for s's).
        var varies = 0
        pairs.withUnsafeBufferPointer { p in
            let s0 = p[0].s, t0 = p[0].t
            var ds: UInt64 = 0, dt: UInt64 = 0
            for e in p {
                ds |= UInt64(bitPattern: e.s ^ s0)
                dt |= UInt64(bitPattern: e.t ^ t0)
            }
            for b in 0..<8 {
                if (dt >> (8 * b)) & 0xFF != 0 { varies |= 1 << b }
                if (ds >> (8 * b)) & 0xFF != 0 { varies |= 1 << (8 + b) }
            }
        }
        let digits = (0..<16).filter { varies & (1 << $0) != 0 }
        guard !digits.isEmpty else { return }  // all pairs equal
        // Digit counts of every varying byte in one read.
        var counts = [Int](repeating: 0, count: digits.count * 256)
        pairs.withUnsafeBufferPointer { p in
            counts.withUnsafeMutableBufferPointer { c in
                for e in p {
                    let t = UInt64(bitPattern: e.t) ^ flip, s = UInt64(bitPattern: e.s) ^ flip
                    for (k, d) in digits.enumerated() {
                        let word = d < 8 ? t : s
                        c[k * 256 + Int(truncatingIfNeeded: (word >> (8 * UInt64(d & 7))) & 0xFF)] += 1
                    }
                }
            }
        }
        var other = [EdgePair](unsafeUninitializedCapacity: n) { _, initialized in initialized = n }
        for (k, d) in digits.enumerated() {
            var at = [Int](repeating: 0, count: 256)
            var sum = 0
            for v in 0..<256 {
                at[v] = sum
                sum += counts[k * 256 + v]
            }
            let shift = 8 * UInt64(d & 7), high = d >= 8
            pairs.withUnsafeBufferPointer { src in
                other.withUnsafeMutableBufferPointer { dst in
                    at.withUnsafeMutableBufferPointer { at in
                        for e in src {
                            let word = (high ? UInt64(bitPattern: e.s) : UInt64(bitPattern: e.t)) ^ flip
                            let v = Int(truncatingIfNeeded: (word >> shift) & 0xFF)
                            dst[at[v]] = e
                            at[v] += 1
                        }
                    }
                }
            }
            swap(&pairs, &other)
        }
    }
}

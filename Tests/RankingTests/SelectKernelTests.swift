import CKernels
import Linalg
import Testing

@Suite("Threshold selection kernel of the soft search's exact top-K")
struct SelectKernelTests {
    /// The reference: every index with s[q] ≥ t, in order, as (ordered score bits, UInt32.max − q).
    static func naive(_ s: [Float], _ t: Float) -> [UInt64] {
        s.indices.filter { s[$0] >= t }.map { q in
            let b = s[q].bitPattern
            let ordered = b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
            return UInt64(ordered) << 32 | UInt64(UInt32.max - UInt32(q))
        }
    }

    @Test(
        "every SIMD level equals a naive loop: lengths not a multiple of 8 or 16, ties at the threshold, NaN, ±0, ±inf",
        arguments: [MOSAIC_KERNEL_PORTABLE, MOSAIC_KERNEL_AVX2, MOSAIC_KERNEL_AVX512])
    func levels(level: Int32) {
        var rng = RandomStream(seed: 3)
        for n in [0, 1, 7, 8, 15, 16, 17, 33, 100, 2000] {
            var s = (0..<n).map { _ in Float(rng.normal()) }
            if n > 5 {
                s[1] = .nan
                s[2] = 0.5  // exactly at the threshold below
                s[3] = -0.0
                s[4] = .infinity
                s[5] = -.infinity
            }
            for t: Float in [0.5, 0, -.infinity, 3] {
                var keys = [UInt64](repeating: 0, count: max(1, n))
                let c = keys.withUnsafeMutableBufferPointer { mosaic_select_at_least_level(level, s, n, t, $0.baseAddress!) }
                #expect(Array(keys.prefix(c)) == Self.naive(s, t), "n \(n), threshold \(t), level \(level)")
            }
        }
    }

    @Test("keys sort like (score descending, index ascending)")
    func order() {
        let s: [Float] = [1, 2, 2, -1, 2]
        var keys = [UInt64](repeating: 0, count: s.count)
        let c = keys.withUnsafeMutableBufferPointer { mosaic_select_at_least(s, s.count, -10, $0.baseAddress!) }
        let order = keys.prefix(c).sorted(by: >).map { Int(UInt32.max - UInt32(truncatingIfNeeded: $0)) }
        #expect(order == [1, 2, 4, 0, 3])
    }
}

import CKernels
import Linalg
import Testing

/// The serving path's C kernels (`TopKeys.c`, `Attend.c`) against naive Swift loops, at every
/// SIMD level the CPU has (a level above it runs the best one below).
@Suite("Serving kernels: index filter, branch-free quickselect, selected-event attention")
struct ServingKernelTests {
    static let levels = [MOSAIC_KERNEL_PORTABLE, MOSAIC_KERNEL_AVX2, MOSAIC_KERNEL_AVX512]

    @Test(
        "index filter equals a naive loop (lengths not a multiple of 8 or 16, ties, NaN, ±0, ±inf)", arguments: levels)
    func indexFilter(level: Int32) {
        var rng = RandomStream(seed: 9)
        for n in [0, 1, 7, 8, 15, 16, 17, 33, 100, 2000] {
            var s = (0..<n).map { _ in Float(rng.normal()) }
            if n > 5 {
                s[1] = .nan
                s[2] = 0.5
                s[3] = -0.0
                s[4] = .infinity
                s[5] = -.infinity
            }
            for t: Float in [0.5, 0, -.infinity, 3, .nan] {
                var idx = [Int32](repeating: -7, count: n + 16)
                let c = idx.withUnsafeMutableBufferPointer {
                    mosaic_select_index_at_least_level(level, s, n, t, $0.baseAddress!)
                }
                let expected = s.indices.filter { s[$0] >= t }.map(Int32.init)
                #expect(Array(idx.prefix(c)) == expected, "n \(n), threshold \(t), level \(level)")
            }
        }
    }

    @Test("quickselect keeps exactly the k largest keys (random, sorted, reversed; every k)")
    func topKeys() {
        var rng = RandomStream(seed: 5)
        for n in [1, 2, 3, 5, 16, 75, 300] {
            let base = Array(Set((0..<n * 3).map { _ in UInt64(rng.int(below: 1 << 40)) })).prefix(n)
            for (name, keys) in [
                ("random", Array(base)), ("ascending", base.sorted()), ("descending", base.sorted(by: >)),
            ] {
                for k in Set([0, 1, n / 2, n - 1, n]) {
                    var a = keys
                    mosaic_top_keys(&a, a.count, k)
                    #expect(a.sorted() == keys.sorted(), "\(name) n \(n) k \(k): not a permutation")
                    if k > 0 && k < a.count {
                        #expect(Set(a.prefix(k)) == Set(keys.sorted(by: >).prefix(k)), "\(name) n \(n) k \(k)")
                    }
                }
            }
        }
    }

    @Test("top-k of a row equals TopK.largest for any threshold, including too high, NaN and NaN scores")
    func topKRow() {
        var rng = RandomStream(seed: 8)
        let h = 333, k = 20
        var rows: [[Float]] = [
            (0..<h).map { _ in Float(rng.normal()) },
            (0..<h).map { _ in Float(rng.int(below: 4)) },  // heavy ties
        ]
        var withNaN = (0..<h).map { _ in Float(rng.normal()) }
        for j in stride(from: 0, to: h, by: 3) { withNaN[j] = .nan }
        rows.append(withNaN)
        var keys = [UInt64](repeating: 0, count: h), idx = [Int32](repeating: 0, count: h + 16)
        var out = [Int32](repeating: -1, count: k)
        for (r, row) in rows.enumerated() {
            let finite = row.enumerated().filter { !$0.element.isNaN }
            let expected = TopK.largest(finite.map(\.element), k: k).map { finite[Int($0.id)].offset }.sorted()
            for (t, step) in [(Float(1), Float(0.25)), (100, 0.25), (-100, 1), (.nan, .nan), (5, 0)] {
                mosaic_top_k_row(row, h, k, t, step, 12, &keys, &idx, &out)
                #expect(out.map(Int.init).sorted() == expected, "row \(r), threshold \(t), step \(step)")
            }
        }
    }

    /// Naive ESU: per row and head, softmax(scale·q·k) over the selected events, Σ a·v.
    static func naiveAttention(
        q: [Float], keys: [Float], values: [Float], idx: [Int32], count: [Int32], n: Int, k: Int, heads: Int, e: Int,
        scale: Float
    ) -> [Float] {
        let he = heads * e
        var out = [Float](repeating: 0, count: n * he)
        for i in 0..<n {
            for hd in 0..<heads {
                let js = (0..<Int(count[i])).map { Int(idx[i * k + $0]) }
                let s = js.map { j in
                    (0..<e).reduce(Float(0)) { $0 + q[i * he + hd * e + $1] * keys[j * he + hd * e + $1] } * scale
                }
                guard let mx = s.max() else { continue }
                let w = s.map { Float.exp($0 - mx) }
                let total = w.reduce(0, +)
                for (t, j) in js.enumerated() {
                    for c in 0..<e { out[i * he + hd * e + c] += w[t] / total * values[j * he + hd * e + c] }
                }
            }
        }
        return out
    }

    @Test(
        "selected-event attention equals a naive loop (head widths 16, 5, 24; empty rows; repeated events)",
        arguments: levels)
    func attention(level: Int32) {
        var rng = RandomStream(seed: 12)
        for (heads, e) in [(2, 16), (3, 5), (1, 24)] {
            let n = 9, k = 21, h = 40, he = heads * e
            let q = (0..<n * he).map { _ in Float(rng.normal()) }
            let keys = (0..<h * he).map { _ in Float(rng.normal()) }
            let values = (0..<h * he).map { _ in Float(rng.normal()) }
            let count = (0..<n).map { i in Int32(i == 3 ? 0 : i == 4 ? k : 1 + rng.int(below: k)) }
            let idx = (0..<n * k).map { _ in Int32(rng.int(below: h)) }
            let scale = 1 / Float(e).squareRoot()
            var weights = [Float](repeating: 0, count: k + 16)
            var context = [Float](repeating: .nan, count: n * he)
            mosaic_attend_selected_level(
                level, q, he, keys, values, he, idx, count, n, k, heads, e, scale, &context, he, &weights)
            let expected = Self.naiveAttention(
                q: q, keys: keys, values: values, idx: idx, count: count, n: n, k: k, heads: heads, e: e, scale: scale)
            let worst = zip(context, expected).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-5, "heads \(heads), e \(e), level \(level): max |Δ| \(worst)")
            #expect(context[3 * he..<4 * he].allSatisfy { $0 == 0 }, "a row with no events has zero context")
        }
    }

    @Test("row softmax equals exp(z − max) / Σ (widths 1, 3, 16, 20, 37; large and equal values)", arguments: levels)
    func softmax(level: Int32) {
        var rng = RandomStream(seed: 14)
        for cols in [1, 3, 16, 20, 37] {
            let rows = 5, ld = cols + 2
            var z = (0..<rows * ld).map { _ in Float(rng.normal() * 4) }
            z[0] = 80  // exp would overflow without the max
            if cols > 1 { z[1] = 80 }
            let before = z
            mosaic_softmax_rows_level(level, &z, rows, cols, ld)
            for r in 0..<rows {
                let row = Array(before[r * ld..<r * ld + cols])
                let m = row.max()!
                let e = row.map { Double(Float.exp($0 - m)) }
                let total = e.reduce(0, +)
                for c in 0..<cols {
                    #expect(
                        abs(Double(z[r * ld + c]) - e[c] / total) < 1e-6,
                        "cols \(cols) row \(r) col \(c) level \(level)")
                }
                // The padding past cols is untouched.
                #expect(z[r * ld + cols..<r * ld + ld] == before[r * ld + cols..<r * ld + ld])
            }
        }
    }
}

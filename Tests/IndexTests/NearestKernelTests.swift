import CKernels
import Foundation
import Linalg
import Testing

@testable import Index

/// The fused nearest-centroid kernel (CKernels) at every level this CPU supports, against a
/// naive double-precision loop: odd dimensions, dimensions and k not multiples of 8 or 16,
/// rows not multiples of the register tile, strided rows, exact ties, NaN rows.
@Suite("fused nearest-centroid kernel")
struct NearestKernelTests {
    /// Levels to test: portable, then AVX2 and AVX-512 when the hardware has them.
    static var levels: [Int32] { Array(0...mosaic_kernel_level_supported()) }

    /// Naive: values v_j = bias_j + alpha * x.c_j in Double, for all j.
    static func naiveValues(
        _ x: [Float], row i: Int, ldx: Int, offset: Int, d: Int, centroids: [Float], k: Int, metric: Metric
    ) -> [Double] {
        (0..<k).map { j in
            var dot = 0.0, norm = 0.0
            for t in 0..<d {
                dot += Double(x[i * ldx + offset + t]) * Double(centroids[j * d + t])
                norm += Double(centroids[j * d + t]) * Double(centroids[j * d + t])
            }
            return metric == .l2 ? norm - 2 * dot : -dot
        }
    }

    static func random(_ count: Int, seed: UInt64) -> [Float] {
        var rng = RandomStream(seed: seed)
        return (0..<count).map { _ in Float(rng.normal()) }
    }

    @Test(
        "matches a naive loop (L2 and inner product, d and k not multiples of 8, strided rows)",
        arguments: [(1, 1), (3, 5), (4, 256), (7, 17), (9, 33), (16, 16), (17, 100), (64, 1024), (65, 31)])
    func matchesNaive(d: Int, k: Int) {
        let n = 27, ldx = d + 3, offset = 2  // rows of width d at column 2 of a wider matrix
        let x = Self.random(n * ldx, seed: UInt64(d * 1000 + k))
        let c = Self.random(k * d, seed: UInt64(d * 7 + k * 13 + 1))
        for metric in Metric.allCases {
            let packed = PackedCentroids(c, k: k, d: d, metric: metric)
            for level in Self.levels {
                var labels = [Int64](repeating: -7, count: n)
                var dist = [Float](repeating: .nan, count: n)
                let used = x.withUnsafeBufferPointer { px in
                    labels.withUnsafeMutableBufferPointer { pl in
                        dist.withUnsafeMutableBufferPointer { pd in
                            packed.nearest(
                                x: px.baseAddress! + offset, n: n, ldx: ldx, labels: pl.baseAddress!,
                                distances: pd.baseAddress!, level: level)
                        }
                    }
                }
                #expect(used == level)
                for i in 0..<n {
                    let v = Self.naiveValues(
                        x, row: i, ldx: ldx, offset: offset, d: d, centroids: c, k: k, metric: metric)
                    let best = v.min()!
                    let j = Int(labels[i])
                    #expect((0..<k).contains(j), "level \(level) row \(i): label \(j)")
                    guard (0..<k).contains(j) else { continue }
                    let scale = 1e-5 * Swift.max(1, abs(best)) * Double(d)
                    // The chosen centroid is optimal up to float rounding …
                    #expect(v[j] - best <= scale, "level \(level) \(metric) d=\(d) k=\(k) row \(i): \(v[j]) vs \(best)")
                    // … and is the naive one when no other is within rounding distance.
                    let second = v.enumerated().filter { $0.offset != v.firstIndex(of: best)! }.map(\.element).min()
                    if let second, second - best > 4 * scale { #expect(j == v.firstIndex(of: best)!) }
                    var xNorm = 0.0
                    for t in 0..<d { xNorm += Double(x[i * ldx + offset + t]) * Double(x[i * ldx + offset + t]) }
                    let want = metric == .l2 ? Swift.max(0, v[j] + xNorm) : v[j]
                    #expect(abs(Double(dist[i]) - want) <= 1e-4 * Swift.max(1, abs(want)) * Double(d))
                }
            }
        }
    }

    @Test("exact ties go to the smaller centroid index at every level", arguments: [3, 8, 13])
    func ties(d: Int) {
        // Small integers: every product and sum is exact, so ties are exact.
        let k = 37
        var c = [Float](repeating: 0, count: k * d)
        for j in 0..<k { for t in 0..<d { c[j * d + t] = Float((j * 7 + t * 3) % 11) - 5 } }
        // Centroids 4, 20 and 33 are identical; 9 and 31 too.
        for t in 0..<d {
            c[20 * d + t] = c[4 * d + t]
            c[33 * d + t] = c[4 * d + t]
            c[31 * d + t] = c[9 * d + t]
        }
        // Rows: copies of centroids 33, 31, 20 and a point halfway between 2 and 3 (a tie between
        // two different centroids when they are at equal distance).
        var x: [Float] = []
        for j in [33, 31, 20] { x += c[(j * d)..<((j + 1) * d)] }
        var mid = [Float](repeating: 0, count: d)
        for t in 0..<d { c[3 * d + t] = c[2 * d + t] + 2 * (t % 2 == 0 ? 1 : -1) }
        for t in 0..<d { mid[t] = c[2 * d + t] + (t % 2 == 0 ? 1 : -1) }
        x += mid
        let n = x.count / d
        let packed = PackedCentroids(c, k: k, d: d, metric: .l2)
        for level in Self.levels {
            var labels = [Int64](repeating: -1, count: n)
            var dist = [Float](repeating: 0, count: n)
            _ = x.withUnsafeBufferPointer { px in
                packed.nearest(x: px.baseAddress!, n: n, ldx: d, labels: &labels, distances: &dist, level: level)
            }
            // Exact naive argmin with ties to the smaller index.
            let want = (0..<n).map { i -> Int64 in
                let v = Self.naiveValues(x, row: i, ldx: d, offset: 0, d: d, centroids: c, k: k, metric: .l2)
                return Int64(v.firstIndex(of: v.min()!)!)
            }
            #expect(labels == want, "level \(level)")
            #expect(Array(labels[0..<3]) == [4, 9, 4], "level \(level)")
            #expect(dist[0] == 0 && dist[1] == 0 && dist[2] == 0)
        }
    }

    @Test("padding centroids are never chosen; a NaN row gets centroid 0")
    func paddingAndNaN() {
        // Every centroid is far from the origin: the zero padding of the last panel would win if
        // its +inf bias were ignored. k = 21 leaves 11 padding slots.
        let d = 5, k = 21
        var c = Self.random(k * d, seed: 3)
        for i in c.indices { c[i] += c[i] >= 0 ? 10 : -10 }
        var x = [Float](repeating: 0, count: 3 * d)
        x[2 * d] = .nan
        let packed = PackedCentroids(c, k: k, d: d, metric: .l2)
        for level in Self.levels {
            var labels = [Int64](repeating: -1, count: 3)
            var dist = [Float](repeating: 0, count: 3)
            _ = x.withUnsafeBufferPointer { px in
                packed.nearest(x: px.baseAddress!, n: 3, ldx: d, labels: &labels, distances: &dist, level: level)
            }
            let v = Self.naiveValues(x, row: 0, ldx: d, offset: 0, d: d, centroids: c, k: k, metric: .l2)
            let want = Int64(v.firstIndex(of: v.min()!)!)
            #expect(labels[0] == want && labels[1] == want, "level \(level): \(labels)")
            #expect(labels[2] == 0, "level \(level): NaN row → \(labels[2])")
        }
    }

    @Test(
        "AVX2 and AVX-512 agree bit for bit (same fused multiply-add order; small-d and tile kernels)",
        arguments: [(4, 256), (7, 45), (24, 300)])
    func simdLevelsAgree(d: Int, k: Int) throws {
        try #require(mosaic_kernel_level_supported() >= 2, "needs AVX-512")
        let n = 101
        let x = Self.random(n * d, seed: 11), c = Self.random(k * d, seed: 12)
        let packed = PackedCentroids(c, k: k, d: d, metric: .l2)
        var out: [([Int64], [Float])] = []
        for level: Int32 in [1, 2] {
            var labels = [Int64](repeating: -1, count: n)
            var dist = [Float](repeating: 0, count: n)
            _ = x.withUnsafeBufferPointer { px in
                packed.nearest(x: px.baseAddress!, n: n, ldx: d, labels: &labels, distances: &dist, level: level)
            }
            out.append((labels, dist))
        }
        #expect(out[0].0 == out[1].0)
        #expect(out[0].1 == out[1].1)
    }

    @Test("Distances.nearest with p = 1 (fused) agrees with the first column of p = 2 (sgemm + heap)")
    func fusedAgreesWithGemmPath() {
        let d = 12, k = 70, n = 500
        let x = Self.random(n * d, seed: 21), c = Self.random(k * d, seed: 22)
        for metric in Metric.allCases {
            let one = Distances.nearest(x, n: n, d: d, centroids: c, k: k, metric: metric, p: 1)
            let two = Distances.nearest(x, n: n, d: d, centroids: c, k: k, metric: metric, p: 2)
            for i in 0..<n {
                let gap = abs(two.distances[2 * i + 1] - two.distances[2 * i])
                if gap > 1e-4 { #expect(one.labels[i] == two.labels[2 * i], "\(metric) row \(i)") }
                #expect(abs(one.distances[i] - two.distances[2 * i]) <= 1e-4 * Swift.max(1, abs(one.distances[i])))
            }
        }
    }
}

/// The list-scan kernel (distances from one query to contiguous rows) at every level.
@Suite("distances-to-rows kernel")
struct DistancesToRowsKernelTests {
    @Test(
        "matches a naive loop (L2 and inner product; d not a multiple of 8 or 16; any row count)",
        arguments: [(1, 1), (5, 3), (8, 4), (16, 9), (17, 5), (64, 33), (70, 7)])
    func matchesNaive(d: Int, n: Int) {
        let q = NearestKernelTests.random(d, seed: UInt64(d + 100))
        let x = NearestKernelTests.random(n * d, seed: UInt64(d * 31 + n))
        for l2 in [true, false] {
            let want = (0..<n).map { j in
                (0..<d).reduce(0.0) { acc, t in
                    let a = Double(q[t]), b = Double(x[j * d + t])
                    return l2 ? acc + (a - b) * (a - b) : acc - a * b
                }
            }
            for level in NearestKernelTests.levels {
                var out = [Float](repeating: .nan, count: n)
                let used = mosaic_distances_to_rows_level(level, l2 ? 1 : 0, q, x, n, d, &out)
                #expect(used == level)
                for j in 0..<n {
                    #expect(
                        abs(Double(out[j]) - want[j]) <= 1e-5 * Double(d) * Swift.max(1, abs(want[j])),
                        "level \(level) l2=\(l2) d=\(d) row \(j): \(out[j]) vs \(want[j])")
                }
            }
        }
    }
}

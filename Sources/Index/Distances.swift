import Foundation
import Linalg

// Glossary: n = rows of x, d = dimension, k = centroids or results, b = rows in a block.

/// Distance kernels shared by k-means, the coarse quantiser, PQ encoding and search.
///
/// Large products are computed in blocks of `blockRows` rows with one sgemm per block, using
/// ‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖² (faiss's `exhaustive_L2sqr_blas`).
enum Distances {
    /// Default rows per gemm block: the (b, k) scratch stays a few MiB.
    static let blockRows = 1024

    /// Squared norms of `n` rows of width `d` read with leading dimension `lda`.
    static func squaredNorms(_ x: UnsafePointer<Float>, n: Int, d: Int, lda: Int, into out: UnsafeMutablePointer<Float>)
    {
        for i in 0..<n { out[i] = dot(x + i * lda, x + i * lda, d) }
    }

    static func squaredNorms(_ x: [Float], n: Int, d: Int) -> [Float] {
        var out = [Float](repeating: 0, count: n)
        x.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { po in
                if n > 0 { squaredNorms(px.baseAddress!, n: n, d: d, lda: d, into: po.baseAddress!) }
            }
        }
        return out
    }

    /// `a · b` over `d` elements (`VectorKernels.dot`).
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int) -> Float {
        VectorKernels.dot(a, b, d)
    }

    /// ‖a − b‖² over `d` elements (SIMD, 8 lanes).
    @inline(__always)
    static func l2(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int) -> Float {
        var acc = SIMD8<Float>()
        var j = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while j + 8 <= d {
            let t =
                ra.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
                - rb.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
            acc += t * t
            j += 8
        }
        var s = acc.sum()
        while j < d {
            let t = a[j] - b[j]
            s += t * t
            j += 1
        }
        return s
    }

    /// Distance (smaller is better) between `a` and `b` under `metric`.
    @inline(__always)
    static func distance(_ metric: Metric, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int) -> Float {
        metric == .l2 ? l2(a, b, d) : -dot(a, b, d)
    }

    /// For each of `n` rows of `x` (leading dimension `lda`), the `p` nearest of `k` centroids
    /// (`(k, d)` row-major, `cNorms` their squared norms, needed for L2), sorted nearest first.
    ///
    /// - Returns through `labels`/`distances` (both `(n, p)`): centroid indices and internal
    ///   distances (squared L2, or −inner product). Ties go to the smaller centroid index.
    /// - Cost: 2·n·k·d flops in sgemm blocks of `blockRows` rows, plus O(n·k·log p) selection;
    ///   for p = 1 the fused kernel of `PackedCentroids` (same flops, no (b, k) scratch).
    static func nearest(
        x: UnsafePointer<Float>, n: Int, d: Int, lda: Int, centroids: UnsafePointer<Float>, k: Int,
        cNorms: UnsafePointer<Float>?, metric: Metric, p: Int,
        labels: UnsafeMutablePointer<Int64>, distances: UnsafeMutablePointer<Float>, blockRows: Int = blockRows
    ) {
        if n == 0 { return }
        if p == 1 {
            // One neighbour: the fused SIMD kernel (no (b, k) product in memory). Its bias is
            // recomputed from the centroids, so `cNorms` is not needed.
            PackedCentroids(centroids, k: k, d: d, metric: metric).nearest(
                x: x, n: n, ldx: lda, labels: labels, distances: distances)
            return
        }
        let b = Swift.max(1, Swift.min(blockRows, n))
        let ip = UnsafeMutablePointer<Float>.allocate(capacity: b * k)
        defer { ip.deallocate() }
        var start = 0
        while start < n {
            let rows = Swift.min(b, n - start)
            // ip is (rows, k) = x_block (rows, d) · cᵀ (d, k)
            BLAS.gemm(
                .none, .transpose, m: rows, n: k, k: d, a: x + start * lda, lda: lda, b: centroids, ldb: d,
                c: ip, ldc: k)
            for i in 0..<rows {
                let row = ip + i * k
                let xi = x + (start + i) * lda
                let xNorm: Float = metric == .l2 ? dot(xi, xi, d) : 0
                let outD = distances + (start + i) * p
                let outL = labels + (start + i) * p
                var heap = ResultHeap(distances: outD, labels: outL, k: p)
                if metric == .l2 {
                    for j in 0..<k { heap.push(Swift.max(0, cNorms![j] - 2 * row[j] + xNorm), Int64(j)) }
                } else {
                    for j in 0..<k { heap.push(-row[j], Int64(j)) }
                }
                heap.sortAscending()
            }
            start += rows
        }
    }

    /// Array convenience for `nearest` over contiguous rows.
    static func nearest(
        _ x: [Float], n: Int, d: Int, centroids: [Float], k: Int, metric: Metric, p: Int = 1
    ) -> (labels: [Int64], distances: [Float]) {
        var labels = [Int64](repeating: -1, count: n * p)
        var dist = [Float](repeating: metric.missing, count: n * p)
        let norms = squaredNorms(centroids, n: k, d: d)
        x.withUnsafeBufferPointer { px in
            centroids.withUnsafeBufferPointer { pc in
                norms.withUnsafeBufferPointer { pn in
                    labels.withUnsafeMutableBufferPointer { pl in
                        dist.withUnsafeMutableBufferPointer { pd in
                            if n > 0 && k > 0 {
                                nearest(
                                    x: px.baseAddress!, n: n, d: d, lda: d, centroids: pc.baseAddress!, k: k,
                                    cNorms: pn.baseAddress, metric: metric, p: p, labels: pl.baseAddress!,
                                    distances: pd.baseAddress!)
                            }
                        }
                    }
                }
            }
        }
        return (labels, dist)
    }
}

/// A bounded max-heap over caller-owned slots that keeps the `k` smallest (distance, label)
/// pairs; ties go to the smaller label, so the kept set never depends on push order.
struct ResultHeap {
    let distances: UnsafeMutablePointer<Float>
    let labels: UnsafeMutablePointer<Int64>
    let k: Int
    private(set) var count = 0

    init(distances: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int64>, k: Int) {
        self.distances = distances
        self.labels = labels
        self.k = k
    }

    /// The distance a candidate must beat (or tie with a smaller label) once full.
    @inline(__always) var threshold: Float { count < k ? .infinity : distances[0] }

    @inline(__always)
    static func worse(_ d1: Float, _ l1: Int64, _ d2: Float, _ l2: Int64) -> Bool {
        d1 > d2 || (d1 == d2 && l1 > l2)
    }

    @inline(__always)
    mutating func push(_ d: Float, _ label: Int64) {
        if count < k {
            var i = count
            count += 1
            while i > 0 {
                let parent = (i - 1) >> 1
                if Self.worse(d, label, distances[parent], labels[parent]) {
                    distances[i] = distances[parent]
                    labels[i] = labels[parent]
                    i = parent
                } else {
                    break
                }
            }
            distances[i] = d
            labels[i] = label
        } else if k > 0 && Self.worse(distances[0], labels[0], d, label) {
            siftDownFromTop(d, label, within: count)
        }
    }

    /// Puts (d, label) at the root of the heap of the first `n` entries and sifts it down.
    @inline(__always)
    private mutating func siftDownFromTop(_ d: Float, _ label: Int64, within n: Int) {
        var i = 0
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var m = l
            if l + 1 < n && Self.worse(distances[l + 1], labels[l + 1], distances[l], labels[l]) { m = l + 1 }
            if Self.worse(distances[m], labels[m], d, label) {
                distances[i] = distances[m]
                labels[i] = labels[m]
                i = m
            } else {
                break
            }
        }
        distances[i] = d
        labels[i] = label
    }

    /// Sorts the kept entries nearest first in place (heapsort: the largest moves to the end,
    /// no allocation); unused slots get (+inf, −1). The heap is spent afterwards (`count` stays).
    mutating func sortAscending() {
        var n = count
        while n > 1 {
            n -= 1
            let d = distances[n], l = labels[n]
            distances[n] = distances[0]
            labels[n] = labels[0]
            siftDownFromTop(d, l, within: n)
        }
        for i in count..<k {
            distances[i] = .infinity
            labels[i] = -1
        }
    }
}

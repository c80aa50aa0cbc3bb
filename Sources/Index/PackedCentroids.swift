import CKernels
import Foundation
import Linalg

// Glossary: n = rows of x, d = dimension, k = centroids, W = 16 centroids per panel.

/// Centroids packed for the fused nearest-centroid kernel (`CKernels/Nearest.c`): panels of 16
/// centroids stored dimension-major, plus the per-centroid bias of the metric.
///
/// `nearest` finds, for each row, the centroid minimising ‖c‖² − 2 x·c (L2) or −x·c (inner
/// product) in one pass that keeps the running minimum in SIMD registers: no (n, k) product is
/// written to memory, unlike sgemm followed by an argmin pass. The kernel level (portable C,
/// AVX2 + FMA or AVX-512) is chosen at run time from the CPU; `MOSAIC_KERNELS=portable|avx2`
/// caps it. Without a SIMD level (e.g. on ARM) rows of d > 8 go through OpenBLAS sgemm plus
/// an argmin instead of the portable C loop. The result of a row depends only on that row (not on n or its position), so it does
/// not depend on how rows are split across ranks or blocks.
struct PackedCentroids {
    let d: Int
    let k: Int
    let metric: Metric
    /// ceil(k / 16) panels of (d, 16).
    private(set) var panels: [Float]
    /// ceil(k / 16) * 16 biases: ‖c‖² (L2) or 0 (inner product); +inf for the padding.
    private(set) var bias: [Float]
    /// The centroids row-major (k, d), for the portable level's sgemm path.
    private(set) var rows: [Float]

    /// Packs `centroids` (k, d) row-major.
    init(_ centroids: UnsafePointer<Float>, k: Int, d: Int, metric: Metric) {
        self.d = d
        self.k = k
        self.metric = metric
        let padded = (k + 15) / 16 * 16
        panels = [Float](repeating: 0, count: mosaic_packed_size(k, d))
        panels.withUnsafeMutableBufferPointer { mosaic_pack_panels(centroids, k, d, $0.baseAddress!) }
        rows = Array(UnsafeBufferPointer(start: centroids, count: k * d))
        bias = [Float](repeating: .infinity, count: padded)
        for j in 0..<k {
            bias[j] = metric == .l2 ? Distances.dot(centroids + j * d, centroids + j * d, d) : 0
        }
    }

    init(_ centroids: [Float], k: Int, d: Int, metric: Metric) {
        self = centroids.withUnsafeBufferPointer { PackedCentroids($0.baseAddress!, k: k, d: d, metric: metric) }
    }

    /// For each of `n` rows of `x` (leading dimension `ldx`), the nearest centroid and its
    /// distance (squared L2, clamped at 0; or −inner product). Ties go to the smaller index.
    /// `level` forces a kernel level (tests); nil = the best the CPU supports. With
    /// `exactDistances: false` (labels only) L2 leaves ‖c‖² − 2 x·c in `distances` (no ‖x‖² pass).
    @discardableResult
    func nearest(
        x: UnsafePointer<Float>, n: Int, ldx: Int, labels: UnsafeMutablePointer<Int64>,
        distances: UnsafeMutablePointer<Float>, level: Int32? = nil, exactDistances: Bool = true
    ) -> Int32 {
        if n == 0 || k == 0 { return level ?? mosaic_kernel_level() }
        let alpha: Float = metric == .l2 ? -2 : -1
        let chosen = level ?? mosaic_kernel_level()
        let used: Int32
        if chosen == MOSAIC_KERNEL_PORTABLE && d > 8 {
            // No SIMD level (e.g. not x86): OpenBLAS sgemm beats the portable C loop here.
            gemmNearest(x: x, n: n, ldx: ldx, alpha: alpha, labels: labels, values: distances)
            used = MOSAIC_KERNEL_PORTABLE
        } else {
            used = panels.withUnsafeBufferPointer { pp in
                bias.withUnsafeBufferPointer { pb in
                    mosaic_argmin_packed_level(
                        chosen, x, n, d, ldx, pp.baseAddress!, pb.baseAddress!, k, alpha,
                        labels, distances)
                }
            }
        }
        if metric == .l2 && exactDistances {
            for i in 0..<n {
                let xi = x + i * ldx
                distances[i] = Swift.max(0, distances[i] + Distances.dot(xi, xi, d))
            }
        }
        return used
    }

    /// The portable level for d > 8: per block of rows one sgemm against the centroids, then
    /// the same argmin as the kernels (v = bias + alpha · x·c, ties to the smaller index, NaN
    /// never chosen, centroid 0 when every value is NaN or +inf).
    private func gemmNearest(
        x: UnsafePointer<Float>, n: Int, ldx: Int, alpha: Float, labels: UnsafeMutablePointer<Int64>,
        values: UnsafeMutablePointer<Float>
    ) {
        let block = 256
        let ip = UnsafeMutablePointer<Float>.allocate(capacity: Swift.min(block, n) * k)
        defer { ip.deallocate() }
        rows.withUnsafeBufferPointer { pr in
            var start = 0
            while start < n {
                let b = Swift.min(block, n - start)
                BLAS.gemm(
                    .none, .transpose, m: b, n: k, k: d, a: x + start * ldx, lda: ldx, b: pr.baseAddress!, ldb: d,
                    c: ip, ldc: k)
                for i in 0..<b {
                    let row = ip + i * k
                    var best = Float.infinity, bj = -1
                    for j in 0..<k {
                        let v = bias[j] + alpha * row[j]
                        if v < best {
                            best = v
                            bj = j
                        }
                    }
                    if bj < 0 {
                        bj = 0
                        best = bias[0] + alpha * row[0]
                    }
                    labels[start + i] = Int64(bj)
                    values[start + i] = best
                }
                start += b
            }
        }
    }

    /// The kernel level in use: "portable", "AVX2" or "AVX-512".
    static var kernelName: String {
        switch mosaic_kernel_level() {
        case MOSAIC_KERNEL_AVX512: "AVX-512"
        case MOSAIC_KERNEL_AVX2: "AVX2"
        default: "portable"
        }
    }
}

/// The SIMD level of the index's distance kernels on this machine ("portable", "AVX2",
/// "AVX-512"), for benchmark reports.
public var indexKernelLevel: String { PackedCentroids.kernelName }

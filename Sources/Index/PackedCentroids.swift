import CKernels
import Foundation

// Glossary: n = rows of x, d = dimension, k = centroids, W = 16 centroids per panel.

/// Centroids packed for the fused nearest-centroid kernel (`CKernels/Nearest.c`): panels of 16
/// centroids stored dimension-major, plus the per-centroid bias of the metric.
///
/// `nearest` finds, for each row, the centroid minimising ‖c‖² − 2 x·c (L2) or −x·c (inner
/// product) in one pass that keeps the running minimum in SIMD registers: no (n, k) product is
/// written to memory, unlike sgemm followed by an argmin pass. The kernel level (portable C,
/// AVX2 + FMA or AVX-512) is chosen at run time from the CPU; `MOSAIC_KERNELS=portable|avx2`
/// caps it. The result of a row depends only on that row (not on n or its position), so it does
/// not depend on how rows are split across ranks or blocks.
struct PackedCentroids {
    let d: Int
    let k: Int
    let metric: Metric
    /// ceil(k / 16) panels of (d, 16).
    private(set) var panels: [Float]
    /// ceil(k / 16) * 16 biases: ‖c‖² (L2) or 0 (inner product); +inf for the padding.
    private(set) var bias: [Float]

    /// Packs `centroids` (k, d) row-major.
    init(_ centroids: UnsafePointer<Float>, k: Int, d: Int, metric: Metric) {
        self.d = d
        self.k = k
        self.metric = metric
        let padded = (k + 15) / 16 * 16
        panels = [Float](repeating: 0, count: mosaic_packed_size(k, d))
        panels.withUnsafeMutableBufferPointer { mosaic_pack_panels(centroids, k, d, $0.baseAddress!) }
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
        let used = panels.withUnsafeBufferPointer { pp in
            bias.withUnsafeBufferPointer { pb in
                mosaic_argmin_packed_level(
                    level ?? mosaic_kernel_level(), x, n, d, ldx, pp.baseAddress!, pb.baseAddress!, k, alpha,
                    labels, distances)
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

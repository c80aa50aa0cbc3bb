import Collective
import Foundation
import Linalg

// Glossary: m = sub-quantisers, ksub = 256 centroids each, dsub = d / m.

/// Product quantiser (faiss's `ProductQuantizer` with 8 bits): a vector of dimension d is cut
/// into m sub-vectors of dsub = d / m, each replaced by the index of its nearest of 256
/// sub-centroids, so a code is m bytes.
public struct ProductQuantizer: Sendable {
    /// Centroids per sub-quantiser (8-bit codes).
    public static let ksub = 256
    public let d: Int
    public let m: Int
    public var dsub: Int { d / m }
    /// Sub-centroids, (m, 256, dsub) row-major.
    public var centroids: [Float]

    public init(d: Int, m: Int, centroids: [Float]? = nil) throws {
        guard m > 0, d % m == 0 else { throw IndexError("PQ: m (\(m)) must divide d (\(d))") }
        self.d = d
        self.m = m
        self.centroids = centroids ?? [Float](repeating: 0, count: d * Self.ksub)
        guard self.centroids.count == d * Self.ksub else {
            throw IndexError(
                "PQ: expected \(d * Self.ksub) centroid values (m=\(m), 256, dsub=\(d / m)), found \(self.centroids.count)"
            )
        }
    }

    /// Trains the m sub-quantisers with distributed k-means on this rank's rows `x` (n, d).
    /// Collective. Sub-quantiser j uses seed `parameters.seed + j`.
    public mutating func train(_ x: [Float], parameters: KMeansParameters, comm: Communicator) throws {
        let n = x.count / d
        let ds = dsub
        for j in 0..<m {
            var sub = [Float](repeating: 0, count: n * ds)
            for i in 0..<n { for t in 0..<ds { sub[i * ds + t] = x[i * d + j * ds + t] } }
            var p = parameters
            p.seed = parameters.seed &+ UInt64(j)
            p.metric = .l2
            p.verbose = false
            let result = try KMeans(d: ds, k: Self.ksub, parameters: p).train(sub, comm: comm)
            centroids.replaceSubrange((j * Self.ksub * ds)..<((j + 1) * Self.ksub * ds), with: result.centroids)
        }
    }

    /// Codes of `n` rows of `x` (n, d): (n, m) bytes, the nearest sub-centroid per sub-vector.
    public func encode(_ x: [Float], n: Int) -> [UInt8] {
        var codes = [UInt8](repeating: 0, count: n * m)
        if n == 0 { return codes }
        let packed = packedSubQuantizers()
        x.withUnsafeBufferPointer { px in
            codes.withUnsafeMutableBufferPointer { pc in
                encode(px.baseAddress!, n: n, into: pc.baseAddress!, packed: packed)
            }
        }
        return codes
    }

    /// The m sub-quantisers packed for the fused nearest-centroid kernel.
    func packedSubQuantizers() -> [PackedCentroids] {
        let ds = dsub, ksub = Self.ksub
        return centroids.withUnsafeBufferPointer { pc in
            (0..<m).map { j in PackedCentroids(pc.baseAddress! + j * ksub * ds, k: ksub, d: ds, metric: .l2) }
        }
    }

    /// Rows per encoding chunk: a chunk of x (chunk × d floats) stays in cache while the m
    /// sub-quantisers read their column slices of it.
    static let encodeChunk = 1024

    /// Codes of `n` rows of `x` (n, d) into `codes` (n, m), `packed` from `packedSubQuantizers`.
    /// Each row's code depends only on that row.
    func encode(
        _ x: UnsafePointer<Float>, n: Int, into codes: UnsafeMutablePointer<UInt8>, packed: [PackedCentroids]
    ) {
        let ds = dsub, chunk = Self.encodeChunk
        let labels = UnsafeMutablePointer<Int64>.allocate(capacity: chunk)
        let values = UnsafeMutablePointer<Float>.allocate(capacity: chunk)
        defer {
            labels.deallocate()
            values.deallocate()
        }
        var start = 0
        while start < n {
            let rows = Swift.min(chunk, n - start)
            for j in 0..<m {
                packed[j].nearest(
                    x: x + start * d + j * ds, n: rows, ldx: d, labels: labels, distances: values,
                    exactDistances: false)
                let out = codes + start * m + j
                for i in 0..<rows { out[i * m] = UInt8(truncatingIfNeeded: labels[i]) }
            }
            start += rows
        }
    }

    /// Reconstructs `n` codes (n, m) into vectors (n, d).
    public func decode(_ codes: [UInt8], n: Int) -> [Float] {
        var out = [Float](repeating: 0, count: n * d)
        let ds = dsub
        for i in 0..<n {
            for j in 0..<m {
                let c = Int(codes[i * m + j])
                for t in 0..<ds { out[i * d + j * ds + t] = centroids[(j * Self.ksub + c) * ds + t] }
            }
        }
        return out
    }

    /// Inner products of queries with every sub-centroid: (nq, m, 256), one sgemm per
    /// sub-quantiser. `q` is (nq, d).
    func innerProductTables(_ q: UnsafePointer<Float>, nq: Int, into out: UnsafeMutablePointer<Float>) {
        let ds = dsub, ksub = Self.ksub
        centroids.withUnsafeBufferPointer { pc in
            for j in 0..<m {
                BLAS.gemm(
                    .none, .transpose, m: nq, n: ksub, k: ds, a: q + j * ds, lda: d,
                    b: pc.baseAddress! + j * ksub * ds, ldb: ds, c: out + j * ksub, ldc: m * ksub)
            }
        }
    }
}

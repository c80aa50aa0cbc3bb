import Collective
import Foundation
import Linalg

/// A warm start across embedding versions: the affine map y ≈ [x, 1] · W from an old embedding
/// space (width dOld) to a new one (width dNew), fitted by least squares (LAPACK `dgels`) on
/// the items present in both versions. Mapping the old vectors a ranker or a stored sequence
/// was built on keeps them meaningful in the new space until they are rebuilt.
public struct EmbeddingAdapter: Sendable, Codable, Equatable {
    public var dOld: Int, dNew: Int
    /// Row-major (dOld + 1, dNew): dOld rows of the linear map, then the bias row.
    public var weights: [Double]

    /// Fits on aligned rows: `old` (n, dOld) and `new` (n, dNew), row-major (one process;
    /// QR of the n × (dOld + 1) design). Needs n ≥ dOld + 1 rows of full rank.
    public static func fit(old: [Float], new: [Float], dOld: Int, dNew: Int) throws -> EmbeddingAdapter {
        let n = old.count / dOld
        precondition(old.count == n * dOld && new.count == n * dNew, "EmbeddingAdapter: rows do not align")
        var a = [Double](repeating: 1, count: n * (dOld + 1))
        for i in 0..<n { for j in 0..<dOld { a[i * (dOld + 1) + j] = Double(old[i * dOld + j]) } }
        let w = try BLAS.leastSquares(a: a, m: n, n: dOld + 1, b: new.map(Double.init), r: dNew)
        return EmbeddingAdapter(dOld: dOld, dNew: dNew, weights: w)
    }

    /// Collective: fits on the items of every rank's two versions, spread over the ranks in any
    /// way (ids distinct within a version): rows are routed to their id's owner and joined there,
    /// the normal equations [X 1]ᵀ[X 1] W = [X 1]ᵀ Y summed over ranks (one allreduce of
    /// (dOld + 1)(dOld + 1 + dNew) values) and solved by `dgels`. Memory: the rank's rows.
    public static func fit(
        oldIDs: [Int64], old: [Float], dOld: Int, newIDs: [Int64], new: [Float], dNew: Int, comm: Communicator
    ) throws -> EmbeddingAdapter {
        let (oi, ov) = try EmbeddingDrift.route(ids: oldIDs, vectors: old, d: dOld, comm: comm)
        let (ni, nv) = try EmbeddingDrift.route(ids: newIDs, vectors: new, d: dNew, comm: comm)
        let row = Dictionary(oi.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        let p = dOld + 1
        var sums = [Double](repeating: 0, count: p * (p + dNew))  // [XᵀX | XᵀY], row-major (p, p + dNew)
        var x = [Double](repeating: 1, count: p)
        for (j, id) in ni.enumerated() {
            guard let i = row[id] else { continue }
            for c in 0..<dOld { x[c] = Double(ov[i * dOld + c]) }
            for a in 0..<p {
                for b in 0..<p { sums[a * (p + dNew) + b] += x[a] * x[b] }
                for c in 0..<dNew { sums[a * (p + dNew) + p + c] += x[a] * Double(nv[j * dNew + c]) }
            }
        }
        try comm.allreduce(&sums)
        let gram = (0..<p).flatMap { a in sums[a * (p + dNew)..<(a * (p + dNew) + p)] }
        let rhs = (0..<p).flatMap { a in sums[(a * (p + dNew) + p)..<((a + 1) * (p + dNew))] }
        let w = try BLAS.leastSquares(a: gram, m: p, n: p, b: rhs, r: dNew)
        return EmbeddingAdapter(dOld: dOld, dNew: dNew, weights: w)
    }

    public init(dOld: Int, dNew: Int, weights: [Double]) {
        precondition(weights.count == (dOld + 1) * dNew, "EmbeddingAdapter: \(weights.count) weights")
        self.dOld = dOld
        self.dNew = dNew
        self.weights = weights
    }

    /// Maps old vectors (n, dOld) row-major into the new space: (n, dNew).
    public func apply(_ old: [Float]) -> [Float] {
        let n = old.count / dOld
        var out = [Float](repeating: 0, count: n * dNew)
        for i in 0..<n {
            for c in 0..<dNew {
                var s = weights[dOld * dNew + c]
                for j in 0..<dOld { s += Double(old[i * dOld + j]) * weights[j * dNew + c] }
                out[i * dNew + c] = Float(s)
            }
        }
        return out
    }
}

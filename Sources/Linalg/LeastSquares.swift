import CBLAS

/// A LAPACK call that failed: the routine and its `info` code.
public struct LAPACKError: Error, CustomStringConvertible {
    public let routine: String, info: Int
    public var description: String {
        info > 0
            ? "\(routine): the matrix is rank-deficient (diagonal element \(info) of R is zero)"
            : "\(routine): argument \(-info) is invalid"
    }
}

extension BLAS {
    /// Least squares through QR (LAPACK `dgels`): the X (n, r) minimising ‖A X − B‖_F for a
    /// row-major A (m, n) of full column rank with m ≥ n and row-major B (m, r). O(m n² + m n r).
    /// Returns X row-major (n, r).
    ///
    /// - Throws: `LAPACKError` when A is rank-deficient (a diagonal element of R at most
    ///   10⁻¹²·m times the largest).
    public static func leastSquares(a: [Double], m: Int, n: Int, b: [Double], r: Int) throws -> [Double] {
        precondition(a.count == m * n && b.count == m * r && m >= n && n > 0 && r > 0, "leastSquares: bad shapes")
        precondition(m < maxCount && m * Swift.max(n, r) < maxCount, "leastSquares: beyond 32-bit LAPACK counts")
        // LAPACK is column-major: the row-major A (m, n) is Aᵀ in column-major, so transpose copies.
        var colA = [Double](repeating: 0, count: m * n), colB = [Double](repeating: 0, count: m * r)
        for i in 0..<m {
            for j in 0..<n { colA[j * m + i] = a[i * n + j] }
            for j in 0..<r { colB[j * m + i] = b[i * r + j] }
        }
        var mm = Int32(m), nn = Int32(n), rr = Int32(r), lda = Int32(m), ldb = Int32(m), info: Int32 = 0
        var lwork: Int32 = -1, size = 0.0
        var trans = CChar(UInt8(ascii: "N"))
        dgels_(&trans, &mm, &nn, &rr, &colA, &lda, &colB, &ldb, &size, &lwork, &info, 1)
        guard info == 0 else { throw LAPACKError(routine: "dgels", info: Int(info)) }
        lwork = Int32(Swift.max(1, size))
        var work = [Double](repeating: 0, count: Int(lwork))
        dgels_(&trans, &mm, &nn, &rr, &colA, &lda, &colB, &ldb, &work, &lwork, &info, 1)
        guard info == 0 else { throw LAPACKError(routine: "dgels", info: Int(info)) }
        // dgels reports only an exactly zero diagonal of R; rounding leaves ~ε·‖A‖ instead.
        let diagonal = (0..<n).map { abs(colA[$0 * m + $0]) }
        let largest = diagonal.max()!
        if let j = diagonal.firstIndex(where: { $0 <= 1e-12 * Double(m) * largest }) {
            throw LAPACKError(routine: "dgels", info: j + 1)
        }
        var x = [Double](repeating: 0, count: n * r)
        for i in 0..<n { for j in 0..<r { x[i * r + j] = colB[j * m + i] } }
        return x
    }
}

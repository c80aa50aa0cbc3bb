import CBLAS

extension BLAS {
    /// Double-precision `C = alpha * op(A) * op(B) + beta * C` on row-major buffers, with the
    /// same shapes and blocking as the `Float` `gemm`. Used where Double is needed (gradient
    /// checks against finite differences run the same layer code in Double).
    public static func gemm(
        _ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
        alpha: Double = 1, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
        beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "dgemm: negative dimension")
        precondition(
            n < maxCount && k < maxCount && lda < maxCount && ldb < maxCount && ldc < maxCount,
            "dgemm: n, k and leading dimensions must be below Int32.max")
        if m == 0 || n == 0 { return }
        let block = maxCount / Swift.max(1, Swift.max(lda, ldc))
        var row = 0
        while row < m {
            let rows = Swift.min(block, m - row)
            let aOffset = transA == .none ? row * lda : row
            cblas_dgemm(
                CblasRowMajor, transA.cblas, transB.cblas, blasint(rows), blasint(n), blasint(k),
                alpha, a + aOffset, blasint(lda), b, blasint(ldb), beta, c + row * ldc, blasint(ldc))
            row += rows
        }
    }
}

import CBLAS

/// Thin, checked façade over OpenBLAS's single-precision CBLAS, row-major throughout.
///
/// OpenBLAS's `blasint` is 32-bit: `gemm` splits the row dimension `m` into blocks so that any
/// `m` works; `k` and `n` (layer widths) must stay below `Int32.max`. Vector routines split
/// long vectors likewise.
public enum BLAS {
    /// Whether an operand is used as stored or transposed.
    public enum Transpose: Sendable {
        case none, transpose
        var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
    }

    static let maxCount = Int(Int32.max)

    /// `C = alpha * op(A) * op(B) + beta * C` on row-major buffers.
    ///
    /// - `op(A)` is (m, k): `A` is stored (m, k) with `lda ≥ k`, or (k, m) with `lda ≥ m` when
    ///   transposed; `op(B)` is (k, n) likewise; `C` is (m, n) with `ldc ≥ n`.
    /// - Cost: 2·m·n·k flops.
    public static func gemm(
        _ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative dimension")
        precondition(
            n < maxCount && k < maxCount && lda < maxCount && ldb < maxCount && ldc < maxCount,
            "gemm: n, k and leading dimensions must be below Int32.max")
        if m == 0 || n == 0 { return }
        // Rows of op(A) are rows of A (no transpose) or columns of A (transposed).
        let block = maxCount / Swift.max(1, Swift.max(lda, ldc))
        var row = 0
        while row < m {
            let rows = Swift.min(block, m - row)
            let aOffset = transA == .none ? row * lda : row
            cblas_sgemm(
                CblasRowMajor, transA.cblas, transB.cblas, blasint(rows), blasint(n), blasint(k),
                alpha, a + aOffset, blasint(lda), b, blasint(ldb), beta, c + row * ldc, blasint(ldc))
            row += rows
        }
    }

    /// `y = alpha * op(A) * x + beta * y`, `A` stored (m, n) row-major with `lda ≥ n`.
    /// `x` has n elements (m when transposed); `y` has m (n when transposed).
    public static func gemv(
        _ trans: Transpose, m: Int, n: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        precondition(m < maxCount && n < maxCount, "gemv: dimensions must be below Int32.max")
        if m == 0 || n == 0 { return }
        cblas_sgemv(CblasRowMajor, trans.cblas, blasint(m), blasint(n), alpha, a, blasint(lda), x, 1, beta, y, 1)
    }

    /// `y += alpha * x` over `count` elements.
    public static func axpy(count: Int, alpha: Float, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>) {
        var done = 0
        while done < count {
            let n = Swift.min(maxCount, count - done)
            cblas_saxpy(blasint(n), alpha, x + done, 1, y + done, 1)
            done += n
        }
    }

    /// `x · y` over `count` elements (accumulated per block in Float, across blocks in Double).
    public static func dot(count: Int, x: UnsafePointer<Float>, y: UnsafePointer<Float>) -> Float {
        var done = 0
        var total = 0.0
        while done < count {
            let n = Swift.min(maxCount, count - done)
            total += Double(cblas_sdot(blasint(n), x + done, 1, y + done, 1))
            done += n
        }
        return Float(total)
    }

    /// Euclidean norm of `count` elements.
    public static func nrm2(count: Int, x: UnsafePointer<Float>) -> Float {
        if count < maxCount { return cblas_snrm2(blasint(count), x, 1) }
        var sumSquares = 0.0
        var done = 0
        while done < count {
            let n = Swift.min(maxCount, count - done)
            let part = Double(cblas_snrm2(blasint(n), x + done, 1))
            sumSquares += part * part
            done += n
        }
        return Float(sumSquares.squareRoot())
    }

    /// `x *= alpha` over `count` elements.
    public static func scal(count: Int, alpha: Float, x: UnsafeMutablePointer<Float>) {
        var done = 0
        while done < count {
            let n = Swift.min(maxCount, count - done)
            cblas_sscal(blasint(n), alpha, x + done, 1)
            done += n
        }
    }

    /// Sets OpenBLAS's thread count for this process (1 when several ranks share a node).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

    /// OpenBLAS's current thread count.
    public static var threads: Int { Int(openblas_get_num_threads()) }
}

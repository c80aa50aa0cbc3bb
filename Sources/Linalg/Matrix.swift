/// A dense row-major `Float` matrix: element (i, j) is `data[i * cols + j]`.
public struct Matrix: Equatable, Sendable {
    /// Number of rows.
    public let rows: Int
    /// Number of columns.
    public let cols: Int
    /// `rows * cols` elements, row-major.
    public var data: [Float]

    /// A zero matrix of shape (rows, cols).
    public init(rows: Int, cols: Int) {
        precondition(rows >= 0 && cols >= 0, "Matrix: negative shape (\(rows), \(cols))")
        self.rows = rows
        self.cols = cols
        data = [Float](repeating: 0, count: rows * cols)
    }

    /// A matrix over existing row-major data; `data.count` must equal `rows * cols`.
    public init(rows: Int, cols: Int, data: [Float]) {
        precondition(data.count == rows * cols, "Matrix: \(data.count) elements for shape (\(rows), \(cols))")
        self.rows = rows
        self.cols = cols
        self.data = data
    }

    /// Element (i, j).
    public subscript(i: Int, j: Int) -> Float {
        get { data[i * cols + j] }
        set { data[i * cols + j] = newValue }
    }

    /// Row `i` as an array of `cols` elements.
    public func row(_ i: Int) -> ArraySlice<Float> { data[(i * cols)..<((i + 1) * cols)] }

    /// The transpose, shape (cols, rows).
    public var transposed: Matrix {
        var t = Matrix(rows: cols, cols: rows)
        for i in 0..<rows { for j in 0..<cols { t.data[j * rows + i] = data[i * cols + j] } }
        return t
    }

    /// Frobenius norm.
    public var norm: Float { Vector.norm(data) }
}

extension Matrix {
    /// `alpha * op(a) * op(b) + beta * c`, where `op` transposes when asked.
    /// Shapes: op(a) is (m, k), op(b) is (k, n), `c` (if given) is (m, n).
    public static func gemm(
        _ a: Matrix, _ b: Matrix, transposeA: Bool = false, transposeB: Bool = false,
        alpha: Float = 1, beta: Float = 0, c: Matrix? = nil
    ) -> Matrix {
        let (m, k) = transposeA ? (a.cols, a.rows) : (a.rows, a.cols)
        let (kb, n) = transposeB ? (b.cols, b.rows) : (b.rows, b.cols)
        precondition(k == kb, "gemm: inner dimensions differ: op(a) is (\(m), \(k)), op(b) is (\(kb), \(n))")
        var out = c ?? Matrix(rows: m, cols: n)
        precondition(out.rows == m && out.cols == n, "gemm: c is (\(out.rows), \(out.cols)), expected (\(m), \(n))")
        if m == 0 || n == 0 { return out }
        if k == 0 {
            // BLAS with k = 0 only scales C.
            for i in out.data.indices { out.data[i] *= beta }
            return out
        }
        a.data.withUnsafeBufferPointer { pa in
            b.data.withUnsafeBufferPointer { pb in
                out.data.withUnsafeMutableBufferPointer { pc in
                    BLAS.gemm(
                        transposeA ? .transpose : .none, transposeB ? .transpose : .none, m: m, n: n, k: k,
                        alpha: alpha, a: pa.baseAddress!, lda: Swift.max(1, a.cols), b: pb.baseAddress!,
                        ldb: Swift.max(1, b.cols), beta: beta, c: pc.baseAddress!, ldc: Swift.max(1, n))
                }
            }
        }
        return out
    }

    /// `op(self) * x`: a vector of `rows` elements (`cols` when transposed).
    public func gemv(_ x: [Float], transpose: Bool = false, alpha: Float = 1) -> [Float] {
        let outCount = transpose ? cols : rows
        precondition(
            x.count == (transpose ? rows : cols), "gemv: x has \(x.count) elements for a (\(rows), \(cols)) matrix")
        var y = [Float](repeating: 0, count: outCount)
        if rows == 0 || cols == 0 { return y }
        data.withUnsafeBufferPointer { pa in
            x.withUnsafeBufferPointer { px in
                y.withUnsafeMutableBufferPointer { py in
                    BLAS.gemv(
                        transpose ? .transpose : .none, m: rows, n: cols, alpha: alpha, a: pa.baseAddress!,
                        lda: cols, x: px.baseAddress!, y: py.baseAddress!)
                }
            }
        }
        return y
    }
}

/// Vector helpers over `[Float]` (BLAS level 1).
public enum Vector {
    /// `x · y`.
    public static func dot(_ x: [Float], _ y: [Float]) -> Float {
        precondition(x.count == y.count, "dot: lengths \(x.count) and \(y.count) differ")
        if x.isEmpty { return 0 }
        return x.withUnsafeBufferPointer { px in
            y.withUnsafeBufferPointer { py in BLAS.dot(count: x.count, x: px.baseAddress!, y: py.baseAddress!) }
        }
    }

    /// `y += alpha * x`.
    public static func axpy(_ alpha: Float, _ x: [Float], _ y: inout [Float]) {
        precondition(x.count == y.count, "axpy: lengths \(x.count) and \(y.count) differ")
        if x.isEmpty { return }
        x.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { py in
                BLAS.axpy(count: x.count, alpha: alpha, x: px.baseAddress!, y: py.baseAddress!)
            }
        }
    }

    /// Euclidean norm.
    public static func norm(_ x: [Float]) -> Float {
        if x.isEmpty { return 0 }
        return x.withUnsafeBufferPointer { BLAS.nrm2(count: x.count, x: $0.baseAddress!) }
    }
}

/// A batch of row vectors: `rows` examples (B) × `cols` features, row-major in `data`.
///
/// Glossary used throughout Learning: B = batch rows, d = feature width, T = sequence length,
/// h = heads, e = head width, E = experts, K = tasks.
public struct Tensor<T: Real>: Sendable {
    /// B.
    public var rows: Int
    /// d.
    public var cols: Int
    /// `rows * cols` values, row-major.
    public var data: [T]

    public init(rows: Int, cols: Int, data: [T]) {
        precondition(data.count == rows * cols, "Tensor: \(data.count) values for shape (\(rows), \(cols))")
        self.rows = rows
        self.cols = cols
        self.data = data
    }

    /// A zero tensor of shape (rows, cols).
    public static func zeros(_ rows: Int, _ cols: Int) -> Tensor {
        Tensor(rows: rows, cols: cols, data: [T](repeating: 0, count: rows * cols))
    }

    /// Number of values.
    public var count: Int { data.count }

    /// Element (r, c).
    @inlinable public subscript(r: Int, c: Int) -> T {
        get { data[r * cols + c] }
        set { data[r * cols + c] = newValue }
    }

    /// Columns concatenated: shapes (B, d1), (B, d2), … → (B, d1 + d2 + …).
    @_specialize(where T == Float)
    public static func concat(_ parts: [Tensor]) -> Tensor {
        precondition(!parts.isEmpty, "concat: no parts")
        let b = parts[0].rows
        precondition(parts.allSatisfy { $0.rows == b }, "concat: parts have different row counts")
        let width = parts.reduce(0) { $0 + $1.cols }
        var out = [T].uninitialized(b * width)
        out.withUnsafeMutableBufferPointer { o in
            var offset = 0
            for p in parts {
                p.data.withUnsafeBufferPointer { s in
                    for r in 0..<b {
                        (o.baseAddress! + r * width + offset).update(from: s.baseAddress! + r * p.cols, count: p.cols)
                    }
                }
                offset += p.cols
            }
        }
        return Tensor(rows: b, cols: width, data: out)
    }

    /// The inverse of `concat`: splits columns into parts of the given widths (the backward
    /// pass of concatenation).
    @_specialize(where T == Float)
    public func split(_ widths: [Int]) -> [Tensor] {
        precondition(widths.reduce(0, +) == cols, "split: widths \(widths) do not add up to \(cols)")
        var parts: [Tensor] = []
        var offset = 0
        data.withUnsafeBufferPointer { s in
            for w in widths {
                var out = [T].uninitialized(rows * w)
                out.withUnsafeMutableBufferPointer { o in
                    for r in 0..<rows {
                        (o.baseAddress! + r * w).update(from: s.baseAddress! + r * cols + offset, count: w)
                    }
                }
                parts.append(Tensor(rows: rows, cols: w, data: out))
                offset += w
            }
        }
        return parts
    }

    /// Element-wise `self += other` (same shape).
    @_specialize(where T == Float)
    public mutating func add(_ other: Tensor) {
        precondition(other.rows == rows && other.cols == cols, "add: shape mismatch")
        data.withUnsafeMutableBufferPointer { a in
            other.data.withUnsafeBufferPointer { b in
                for i in 0..<a.count { a[i] += b[i] }
            }
        }
    }
}

/// `c = alpha·op(a)·op(b) + beta·c` on tensors' storage (row-major, leading dimensions equal to
/// the stored widths).
@_specialize(where T == Float)
@inline(__always)
func matmul<T: Real>(
    _ ta: Bool, _ tb: Bool, m: Int, n: Int, k: Int, alpha: T = 1,
    _ a: UnsafePointer<T>, _ lda: Int, _ b: UnsafePointer<T>, _ ldb: Int,
    beta: T = 0, _ c: UnsafeMutablePointer<T>, _ ldc: Int
) {
    T.gemm(
        ta ? .transpose : .none, tb ? .transpose : .none, m: m, n: n, k: k, alpha: alpha,
        a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
}

extension Array where Element: Real {
    /// An array of `count` scalars whose values are unspecified: for outputs that are fully
    /// written before being read (a gemm with beta = 0, a copy), saving a memset per call.
    @inline(__always)
    static func uninitialized(_ count: Int) -> [Element] {
        [Element](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }
}

/// Short-vector kernels inlined into hot loops (a BLAS call costs more than the work below a
/// few hundred elements).
public enum VectorKernels {
    /// `a · b` over `n` floats, 8 lanes at a time.
    @inlinable @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        var j = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while j + 8 <= n {
            acc +=
                ra.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
                * rb.loadUnaligned(fromByteOffset: j * 4, as: SIMD8<Float>.self)
            j += 8
        }
        var s = acc.sum()
        while j < n {
            s += a[j] * b[j]
            j += 1
        }
        return s
    }
}

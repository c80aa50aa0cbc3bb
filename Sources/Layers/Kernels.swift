/// Element-wise kernels written with explicit SIMD for Float (the compiler does not vectorise
/// the generic loops through possibly aliasing pointers); other scalars take the plain loop.
enum Kernels {
    @inline(__always)
    static func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
    }
    @inline(__always)
    static func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
    }

    /// o[i] = x[i] > 0 ? g[i] : 0 (ReLU backward).
    @_specialize(where T == Float)
    static func reluBackward<T: Real>(
        _ o: UnsafeMutablePointer<T>, _ g: UnsafePointer<T>, _ x: UnsafePointer<T>, _ n: Int
    ) {
        var i = 0
        if T.self == Float.self {
            let of = UnsafeMutableRawPointer(o).assumingMemoryBound(to: Float.self)
            let gf = UnsafeRawPointer(g).assumingMemoryBound(to: Float.self)
            let xf = UnsafeRawPointer(x).assumingMemoryBound(to: Float.self)
            while i + 8 <= n {
                store8(load8(gf + i).replacing(with: 0, where: load8(xf + i) .<= 0), of + i)
                i += 8
            }
        }
        while i < n {
            let gi = g[i], xi = x[i]
            o[i] = xi > 0 ? gi : 0
            i += 1
        }
    }

    /// Adam over n values: m ← β1·m + (1−β1)·g; s ← β2·s + (1−β2)·g²;
    /// v ← v·decay − rate·m/(sqrt(s)·root2 + ε).
    @_specialize(where T == Float)
    static func adam<T: Real>(
        _ v: UnsafeMutablePointer<T>, _ g: UnsafePointer<T>, _ m: UnsafeMutablePointer<T>, _ s: UnsafeMutablePointer<T>,
        _ n: Int,
        b1: T, b2: T, rate: T, root2: T, eps: T, decay: T
    ) {
        var i = 0
        if T.self == Float.self {
            let vf = UnsafeMutableRawPointer(v).assumingMemoryBound(to: Float.self)
            let gf = UnsafeRawPointer(g).assumingMemoryBound(to: Float.self)
            let mf = UnsafeMutableRawPointer(m).assumingMemoryBound(to: Float.self)
            let sf = UnsafeMutableRawPointer(s).assumingMemoryBound(to: Float.self)
            let b1v = SIMD8<Float>(repeating: Float(b1)), b2v = SIMD8<Float>(repeating: Float(b2))
            let c1 = SIMD8<Float>(repeating: 1 - Float(b1)), c2 = SIMD8<Float>(repeating: 1 - Float(b2))
            let ratev = SIMD8<Float>(repeating: Float(rate)), rootv = SIMD8<Float>(repeating: Float(root2))
            let epsv = SIMD8<Float>(repeating: Float(eps)), decayv = SIMD8<Float>(repeating: Float(decay))
            while i + 8 <= n {
                let gi = load8(gf + i)
                let mi = b1v * load8(mf + i) + c1 * gi
                let si = b2v * load8(sf + i) + c2 * gi * gi
                store8(mi, mf + i)
                store8(si, sf + i)
                store8(load8(vf + i) * decayv - ratev * mi / (si.squareRoot() * rootv + epsv), vf + i)
                i += 8
            }
        }
        while i < n {
            let gi = g[i]
            let mi = b1 * m[i] + (1 - b1) * gi
            let si = b2 * s[i] + (1 - b2) * gi * gi
            m[i] = mi
            s[i] = si
            v[i] = v[i] * decay - rate * mi / (si.squareRoot() * root2 + eps)
            i += 1
        }
    }
}

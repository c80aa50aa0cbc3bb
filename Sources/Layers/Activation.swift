/// Element-wise activation.
public final class Activation<T: Real>: Layer {
    public enum Kind: String, Sendable, CaseIterable {
        case relu, gelu, sigmoid
    }
    public let kind: Kind
    private var x = Tensor<T>.zeros(0, 0)
    private var y = Tensor<T>.zeros(0, 0)

    public init(_ kind: Kind) { self.kind = kind }

    // GELU, tanh form: 0.5·x·(1 + tanh(c·(x + 0.044715·x³))), c = sqrt(2/π).
    static var geluC: T { T(0.7978845608028654) }

    @_specialize(where T == Float)
    public func forward(_ x: Tensor<T>) -> Tensor<T> {
        self.x = x
        var out = x
        out.data.withUnsafeMutableBufferPointer { ob in
            let o = ob.baseAddress!, count = ob.count
            switch kind {
            case .relu: for i in 0..<count { o[i] = Swift.max(o[i], 0) }  // branchless: vectorises
            case .sigmoid: for i in 0..<count { o[i] = T.sigmoid(o[i]) }
            case .gelu:
                for i in 0..<count {
                    let v = o[i]
                    o[i] = T(0.5) * v * (1 + T.tanh(Self.geluC * (v + T(0.044715) * v * v * v)))
                }
            }
        }
        y = out
        return out
    }

    @_specialize(where T == Float)
    public func backward(_ dy: Tensor<T>) -> Tensor<T> {
        let n = dy.count
        var out = [T].uninitialized(n)
        out.withUnsafeMutableBufferPointer { ob in
            dy.data.withUnsafeBufferPointer { gb in
                x.data.withUnsafeBufferPointer { xb in
                    y.data.withUnsafeBufferPointer { yb in
                        // Plain base pointers, so the loops vectorise (no reloads through the buffers).
                        let o = ob.baseAddress!, g = gb.baseAddress!, xp = xb.baseAddress!, yp = yb.baseAddress!
                        switch kind {
                        case .relu: Kernels.reluBackward(o, g, xp, n)
                        case .sigmoid: for i in 0..<n { o[i] = g[i] * yp[i] * (1 - yp[i]) }
                        case .gelu:
                            for i in 0..<n {
                                let v = xp[i]
                                let t = T.tanh(Self.geluC * (v + T(0.044715) * v * v * v))
                                let d =
                                    T(0.5) * (1 + t) + T(0.5) * v * (1 - t * t) * Self.geluC
                                    * (1 + 3 * T(0.044715) * v * v)
                                o[i] = g[i] * d
                            }
                        }
                    }
                }
            }
        }
        return Tensor(rows: dy.rows, cols: dy.cols, data: out)
    }
}

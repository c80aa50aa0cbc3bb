import Learning

/// PinSage's final dense layers after the convolutions (Ying et al. 2018, Algorithm 2, line 8):
///
///     u_v = ReLU(G1·z_v + g1),  o_v = G2·u_v + g2,  out_v = o_v / ‖o_v‖
///
/// No ReLU after G2, so the output can take negative coordinates and cosines cover [−1, 1]
/// (after a convolution every coordinate is ≥ 0). Shapes: input (B, dIn), hidden dHidden,
/// output (B, dOut), L2-normalised rows.
public final class PinSageOutput<T: Real> {
    public let dIn: Int, dHidden: Int, dOut: Int
    let g1: Linear<T>, g2: Linear<T>
    let relu = Activation<T>(.relu)
    private var out = Tensor<T>.zeros(0, 0)
    private var norms: [T] = []

    public init(_ store: ParameterStore<T>, name: String, dIn: Int, dHidden: Int, dOut: Int) {
        self.dIn = dIn
        self.dHidden = dHidden
        self.dOut = dOut
        g1 = Linear(store, name: "\(name).g1", inputs: dIn, outputs: dHidden)
        g2 = Linear(store, name: "\(name).g2", inputs: dHidden, outputs: dOut)
    }

    /// (B, dOut), L2-normalised rows.
    @_specialize(where T == Float)
    public func forward(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.cols == dIn)
        var o = g2.forward(relu.forward(g1.forward(x)))
        norms = [T](repeating: 0, count: o.rows)
        for r in 0..<o.rows {
            var s: T = 0
            for c in 0..<dOut { s += o.data[r * dOut + c] * o.data[r * dOut + c] }
            let nrm = Swift.max(s.squareRoot(), T(1e-12))
            norms[r] = nrm
            for c in 0..<dOut { o.data[r * dOut + c] /= nrm }
        }
        out = o
        return o
    }

    /// From dL/d(output) (B, dOut): adds dL/dθ to the store; returns dL/d input (B, dIn).
    @_specialize(where T == Float)
    public func backward(_ dz: Tensor<T>) -> Tensor<T> {
        var d = Tensor<T>.zeros(dz.rows, dOut)
        for r in 0..<dz.rows {
            var dot: T = 0
            for c in 0..<dOut { dot += out.data[r * dOut + c] * dz.data[r * dOut + c] }
            for c in 0..<dOut {
                d.data[r * dOut + c] = (dz.data[r * dOut + c] - out.data[r * dOut + c] * dot) / norms[r]
            }
        }
        return g1.backward(relu.backward(g2.backward(d)))
    }
}

import Learning

/// One PinSage convolution with importance pooling (Ying et al. 2018, Algorithm 1):
///
///     n_u = ReLU(Q·h_u + q)                       for each of the T neighbours u of v
///     a_v = Σ_u α_{v,u} · n_u                     (α: importance weights, sum 1 per node)
///     y_v = ReLU(W·[h_v, a_v] + w),  z_v = y_v / ‖y_v‖
///
/// Shapes: `selfX` (B, dIn), `neighbors` (B·T, dIn) row b·T + t is neighbour t of node b,
/// `weights` (B·T); output (B, dOut). Padding neighbours carry weight 0.
public final class PinSageConv<T: Real> {
    public let dIn: Int, dHidden: Int, dOut: Int
    let q: Linear<T>, w: Linear<T>
    let reluQ = Activation<T>(.relu), reluW = Activation<T>(.relu)
    private var weights: [T] = []
    private var t = 0
    private var z = Tensor<T>.zeros(0, 0)
    private var norms: [T] = []

    public init(_ store: ParameterStore<T>, name: String, dIn: Int, dHidden: Int, dOut: Int) {
        self.dIn = dIn
        self.dHidden = dHidden
        self.dOut = dOut
        q = Linear(store, name: "\(name).q", inputs: dIn, outputs: dHidden)
        w = Linear(store, name: "\(name).w", inputs: dIn + dHidden, outputs: dOut)
    }

    /// z (B, dOut), L2-normalised rows.
    @_specialize(where T == Float)
    public func forward(selfX: Tensor<T>, neighbors: Tensor<T>, weights: [T], t: Int) -> Tensor<T> {
        let b = selfX.rows
        precondition(neighbors.rows == b * t && weights.count == b * t && selfX.cols == dIn && neighbors.cols == dIn)
        self.weights = weights
        self.t = t
        let n = reluQ.forward(q.forward(neighbors))  // (B·T, dH)
        var agg = Tensor<T>.zeros(b, dHidden)
        for r in 0..<b {
            for k in 0..<t {
                let a = weights[r * t + k]
                if a == 0 { continue }
                let src = (r * t + k) * dHidden, dst = r * dHidden
                for c in 0..<dHidden { agg.data[dst + c] += a * n.data[src + c] }
            }
        }
        var y = reluW.forward(w.forward(Tensor.concat([selfX, agg])))  // (B, dOut)
        norms = [T](repeating: 0, count: b)
        for r in 0..<b {
            var s: T = 0
            for c in 0..<dOut { s += y.data[r * dOut + c] * y.data[r * dOut + c] }
            let nrm = Swift.max(s.squareRoot(), T(1e-12))
            norms[r] = nrm
            for c in 0..<dOut { y.data[r * dOut + c] /= nrm }
        }
        z = y
        return y
    }

    /// From dL/dz (B, dOut): adds dL/dθ to the store; returns dL/d selfX (B, dIn) and
    /// dL/d neighbors (B·T, dIn).
    @_specialize(where T == Float)
    public func backward(_ dz: Tensor<T>) -> (dSelf: Tensor<T>, dNeighbors: Tensor<T>) {
        let b = dz.rows
        var dy = Tensor<T>.zeros(b, dOut)
        for r in 0..<b {
            var dot: T = 0
            for c in 0..<dOut { dot += z.data[r * dOut + c] * dz.data[r * dOut + c] }
            for c in 0..<dOut {
                dy.data[r * dOut + c] = (dz.data[r * dOut + c] - z.data[r * dOut + c] * dot) / norms[r]
            }
        }
        let dCat = w.backward(reluW.backward(dy))
        let parts = dCat.split([dIn, dHidden])
        let dAgg = parts[1]
        var dn = Tensor<T>.zeros(b * t, dHidden)
        for r in 0..<b {
            for k in 0..<t {
                let a = weights[r * t + k]
                if a == 0 { continue }
                let dst = (r * t + k) * dHidden
                for c in 0..<dHidden { dn.data[dst + c] = a * dAgg.data[r * dHidden + c] }
            }
        }
        let dNeighbors = q.backward(reluQ.backward(dn))
        return (parts[0], dNeighbors)
    }
}

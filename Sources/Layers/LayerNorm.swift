/// Layer normalisation over the features of each row: y = γ·(x − μ)/sqrt(σ² + ε) + β,
/// with γ, β of width d.
public final class LayerNorm<T: Real>: Layer {
    public let width: Int
    public let epsilon: T
    public let store: ParameterStore<T>
    public let gamma: ParameterView, beta: ParameterView
    private var xhat = Tensor<T>.zeros(0, 0)
    private var inverseStd: [T] = []

    public init(_ store: ParameterStore<T>, name: String, width: Int, epsilon: T = T(1e-5)) {
        self.store = store
        self.width = width
        self.epsilon = epsilon
        gamma = store.add("\(name).gamma", shape: [width], .ones)
        beta = store.add("\(name).beta", shape: [width], .zeros)
    }

    @_specialize(where T == Float)
    public func forward(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.cols == width, "LayerNorm \(gamma.name): width \(x.cols), expected \(width)")
        let d = width, b = x.rows
        xhat = x
        inverseStd = [T](repeating: 0, count: b)
        var y = x
        let g = store.value(gamma), bt = store.value(beta)
        xhat.data.withUnsafeMutableBufferPointer { h in
            y.data.withUnsafeMutableBufferPointer { yp in
                for r in 0..<b {
                    let row = h.baseAddress! + r * d
                    var mean: T = 0
                    for c in 0..<d { mean += row[c] }
                    mean /= T(d)
                    var variance: T = 0
                    for c in 0..<d { let z = row[c] - mean; variance += z * z }
                    variance /= T(d)
                    let inv = 1 / (variance + epsilon).squareRoot()
                    inverseStd[r] = inv
                    for c in 0..<d {
                        row[c] = (row[c] - mean) * inv
                        yp[r * d + c] = g[c] * row[c] + bt[c]
                    }
                }
            }
        }
        return y
    }

    @_specialize(where T == Float)
    public func backward(_ dy: Tensor<T>) -> Tensor<T> {
        let d = width, b = dy.rows
        var dx = dy
        let g = store.value(gamma), dg = store.grad(gamma), db = store.grad(beta)
        dx.data.withUnsafeMutableBufferPointer { o in
            xhat.data.withUnsafeBufferPointer { h in
                for r in 0..<b {
                    let row = o.baseAddress! + r * d, xr = h.baseAddress! + r * d
                    var meanD: T = 0, meanDX: T = 0
                    for c in 0..<d {
                        dg[c] += row[c] * xr[c]
                        db[c] += row[c]
                        let dxhat = row[c] * g[c]
                        meanD += dxhat
                        meanDX += dxhat * xr[c]
                    }
                    meanD /= T(d)
                    meanDX /= T(d)
                    let inv = inverseStd[r]
                    for c in 0..<d { row[c] = inv * (row[c] * g[c] - meanD - xr[c] * meanDX) }
                }
            }
        }
        return dx
    }
}

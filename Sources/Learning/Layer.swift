import Linalg

/// A differentiable map from one batch to another.
///
/// `forward` caches what `backward` needs (so call them in pairs); `backward` receives
/// dL/dy, accumulates dL/dθ into the parameter store's gradients (`+=`), and returns dL/dx.
public protocol Layer<Scalar>: AnyObject {
    associatedtype Scalar: Real
    /// y = f(x). x is (B, inputs), y is (B, outputs).
    func forward(_ x: Tensor<Scalar>) -> Tensor<Scalar>
    /// dL/dx from dL/dy (B, outputs); adds dL/dθ to the store's gradients.
    func backward(_ dy: Tensor<Scalar>) -> Tensor<Scalar>
}

/// Layers applied in order.
public final class Sequential<T: Real>: Layer {
    public let layers: [any Layer<T>]
    public init(_ layers: [any Layer<T>]) { self.layers = layers }

    @_specialize(where T == Float)
    public func forward(_ x: Tensor<T>) -> Tensor<T> {
        var h = x
        for layer in layers { h = layer.forward(h) }
        return h
    }

    @_specialize(where T == Float)
    public func backward(_ dy: Tensor<T>) -> Tensor<T> {
        var g = dy
        for layer in layers.reversed() { g = layer.backward(g) }
        return g
    }

    /// A multilayer perceptron `widths[0] → widths[1] → …` with `activation` after every linear
    /// layer except (when `finalActivation` is false) the last.
    public static func mlp(
        _ store: ParameterStore<T>, name: String, widths: [Int], activation: Activation<T>.Kind = .relu,
        finalActivation: Bool = true
    ) -> Sequential {
        var layers: [any Layer<T>] = []
        for i in 0..<widths.count - 1 {
            layers.append(Linear(store, name: "\(name).\(i)", inputs: widths[i], outputs: widths[i + 1]))
            if finalActivation || i < widths.count - 2 { layers.append(Activation(activation)) }
        }
        return Sequential(layers)
    }
}

/// Fully connected layer y = x·W + b. W is (inputs, outputs), b is (outputs).
/// Cost: 2·B·inputs·outputs flops forward, twice that backward.
public final class Linear<T: Real>: Layer {
    public let inputs: Int, outputs: Int
    public let store: ParameterStore<T>
    public let weight: ParameterView
    public let bias: ParameterView?
    private var x = Tensor<T>.zeros(0, 0)

    public init(_ store: ParameterStore<T>, name: String, inputs: Int, outputs: Int, bias: Bool = true) {
        self.store = store
        self.inputs = inputs
        self.outputs = outputs
        weight = store.add("\(name).weight", shape: [inputs, outputs], .glorot(fanIn: inputs, fanOut: outputs))
        self.bias = bias ? store.add("\(name).bias", shape: [outputs], .zeros) : nil
    }

    @_specialize(where T == Float)
    public func forward(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.cols == inputs, "Linear \(weight.name): input width \(x.cols), expected \(inputs)")
        self.x = x
        let b = x.rows
        var y = [T](repeating: 0, count: b * outputs)
        let w = store.value(weight)
        y.withUnsafeMutableBufferPointer { yp in
            if let bias {
                let bp = store.value(bias)
                for r in 0..<b { (yp.baseAddress! + r * outputs).update(from: bp, count: outputs) }
            }
            x.data.withUnsafeBufferPointer { xp in
                matmul(
                    false, false, m: b, n: outputs, k: inputs, xp.baseAddress!, inputs, w, outputs,
                    beta: bias == nil ? 0 : 1, yp.baseAddress!, outputs)
            }
        }
        return Tensor(rows: b, cols: outputs, data: y)
    }

    @_specialize(where T == Float)
    public func backward(_ dy: Tensor<T>) -> Tensor<T> {
        let b = dy.rows
        var dx = [T](repeating: 0, count: b * inputs)
        dy.data.withUnsafeBufferPointer { g in
            x.data.withUnsafeBufferPointer { xp in
                // dW += xᵀ·dy  (inputs, outputs)
                matmul(
                    true, false, m: inputs, n: outputs, k: b, xp.baseAddress!, inputs, g.baseAddress!, outputs,
                    beta: 1, store.grad(weight), outputs)
            }
            if let bias {
                let db = store.grad(bias)
                for r in 0..<b {
                    let row = g.baseAddress! + r * outputs
                    for c in 0..<outputs { db[c] += row[c] }
                }
            }
            dx.withUnsafeMutableBufferPointer { dxp in
                // dx = dy·Wᵀ  (B, inputs)
                matmul(
                    false, true, m: b, n: inputs, k: outputs, g.baseAddress!, outputs, store.value(weight), outputs,
                    dxp.baseAddress!, inputs)
            }
        }
        return Tensor(rows: b, cols: inputs, data: dx)
    }
}

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
        var out = [T](repeating: 0, count: n)
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

/// Inverted dropout: in training, each value is zeroed with probability `rate` and the rest
/// scaled by 1/(1 − rate); at inference it is the identity.
///
/// The mask of row r at step s comes from stream `(seed, s, firstRow + r)`: set `step` and
/// `firstRow` (the global index of the batch's first example) so that masks depend on the
/// example, not on the rank that processes it.
public final class Dropout<T: Real>: Layer {
    public let rate: Double
    public let seed: UInt64
    public var isTraining = true
    /// Training step (part of the mask's key).
    public var step = 0
    /// Global index of the first row of the next batch (part of the mask's key).
    public var firstRow = 0
    private var mask: [T] = []

    public init(rate: Double, seed: UInt64) {
        precondition(rate >= 0 && rate < 1, "Dropout rate must be in [0, 1)")
        self.rate = rate
        self.seed = seed
    }

    @_specialize(where T == Float)
    public func forward(_ x: Tensor<T>) -> Tensor<T> {
        guard isTraining, rate > 0 else {
            mask = []
            return x
        }
        let keep = T(1 / (1 - rate))
        mask = [T](repeating: 0, count: x.count)
        var y = x
        for r in 0..<x.rows {
            var rng = RandomStream(seed: seed, rank: UInt64(step), index: UInt64(firstRow + r))
            for c in 0..<x.cols where rng.uniform() >= rate {
                mask[r * x.cols + c] = keep
            }
        }
        for i in 0..<y.count { y.data[i] *= mask[i] }
        return y
    }

    @_specialize(where T == Float)
    public func backward(_ dy: Tensor<T>) -> Tensor<T> {
        if mask.isEmpty { return dy }
        var dx = dy
        for i in 0..<dx.count { dx.data[i] *= mask[i] }
        return dx
    }
}

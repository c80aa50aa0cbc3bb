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
        var y = [T].uninitialized(b * outputs)
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
        var dx = [T].uninitialized(b * inputs)
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

/// Multi-head target attention (DIN/SIM style): one query per example attends over a padded
/// sequence of T keys/values, of which only the unmasked positions count.
///
/// Shapes: query (B, dq); keys and values (B·T, dk), row b·T + t; mask (B·T), true = real
/// item. Q = query·Wq, K = keys·Wk, V = values·Wv (all h·e wide); per head,
/// a = softmax over unmasked t of Q_h·K_{t,h}/sqrt(e); context_h = Σ_t a_t·V_{t,h};
/// output = context·Wo (B, dOut). Wo has no bias, so a row whose positions are all padding
/// gets exactly zero output (and zero gradients), never NaN.
public final class TargetAttention<T: Real> {
    public let queryWidth: Int, keyWidth: Int, heads: Int, headWidth: Int, outputs: Int
    public let store: ParameterStore<T>
    public let wq: ParameterView, wk: ParameterView, wv: ParameterView, wo: ParameterView
    private var b = 0, t = 0
    private var query: [T] = [], keys: [T] = [], values: [T] = []
    private var q: [T] = [], k: [T] = [], v: [T] = [], attention: [T] = [], context: [T] = []
    private var mask: [Bool] = []

    public init(
        _ store: ParameterStore<T>, name: String, queryWidth: Int, keyWidth: Int, heads: Int, headWidth: Int,
        outputs: Int
    ) {
        self.store = store
        self.queryWidth = queryWidth
        self.keyWidth = keyWidth
        self.heads = heads
        self.headWidth = headWidth
        self.outputs = outputs
        let he = heads * headWidth
        wq = store.add("\(name).wq", shape: [queryWidth, he], .glorot(fanIn: queryWidth, fanOut: he))
        wk = store.add("\(name).wk", shape: [keyWidth, he], .glorot(fanIn: keyWidth, fanOut: he))
        wv = store.add("\(name).wv", shape: [keyWidth, he], .glorot(fanIn: keyWidth, fanOut: he))
        wo = store.add("\(name).wo", shape: [he, outputs], .glorot(fanIn: he, fanOut: outputs))
    }

    @_specialize(where T == Float)
    private func project(_ x: [T], rows: Int, width: Int, _ w: ParameterView) -> [T] {
        let he = heads * headWidth
        var out = [T].uninitialized(rows * he)
        x.withUnsafeBufferPointer { xp in
            out.withUnsafeMutableBufferPointer { op in
                matmul(
                    false, false, m: rows, n: he, k: width, xp.baseAddress!, width, store.value(w), he, op.baseAddress!,
                    he)
            }
        }
        return out
    }

    /// Output (B, outputs). `length` is T, the padded sequence length.
    @_specialize(where T == Float)
    public func forward(query: Tensor<T>, keys: [T], values: [T], mask: [Bool], length: Int) -> Tensor<T> {
        b = query.rows
        t = length
        precondition(query.cols == queryWidth, "TargetAttention: query width \(query.cols), expected \(queryWidth)")
        precondition(
            keys.count == b * t * keyWidth && values.count == keys.count && mask.count == b * t,
            "TargetAttention: keys/values/mask do not match (B, T) = (\(b), \(t))")
        self.query = query.data
        self.keys = keys
        self.values = values
        self.mask = mask
        let h = heads, e = headWidth, he = h * e
        q = project(query.data, rows: b, width: queryWidth, wq)
        k = project(keys, rows: b * t, width: keyWidth, wk)
        v = project(values, rows: b * t, width: keyWidth, wv)
        attention = [T](repeating: 0, count: b * h * t)
        context = [T](repeating: 0, count: b * he)
        let scale = 1 / T(e).squareRoot()
        for i in 0..<b {
            for hd in 0..<h {
                let a = (i * h + hd) * t
                var m = -T.infinity
                for s in 0..<t where mask[i * t + s] {
                    var dot: T = 0
                    for c in 0..<e { dot += q[i * he + hd * e + c] * k[(i * t + s) * he + hd * e + c] }
                    attention[a + s] = dot * scale
                    m = Swift.max(m, dot * scale)
                }
                if m == -T.infinity { continue }  // all padding: zero weights, zero context
                var total: T = 0
                for s in 0..<t where mask[i * t + s] {
                    attention[a + s] = T.exp(attention[a + s] - m)
                    total += attention[a + s]
                }
                for s in 0..<t where mask[i * t + s] {
                    attention[a + s] /= total
                    let w = attention[a + s]
                    for c in 0..<e { context[i * he + hd * e + c] += w * v[(i * t + s) * he + hd * e + c] }
                }
            }
        }
        var out = [T].uninitialized(b * outputs)
        context.withUnsafeBufferPointer { cp in
            out.withUnsafeMutableBufferPointer { op in
                matmul(
                    false, false, m: b, n: outputs, k: he, cp.baseAddress!, he, store.value(wo), outputs,
                    op.baseAddress!, outputs)
            }
        }
        return Tensor(rows: b, cols: outputs, data: out)
    }

    /// Attention weights of the last forward, (B, h, T); zero at padded positions.
    public var lastAttention: [T] { attention }

    /// Gradients of query (B, dq), keys and values (B·T, dk) from dL/doutput (B, outputs).
    @_specialize(where T == Float)
    public func backward(_ dOut: Tensor<T>) -> (query: Tensor<T>, keys: [T], values: [T]) {
        let h = heads, e = headWidth, he = h * e
        var dContext = [T].uninitialized(b * he)
        dOut.data.withUnsafeBufferPointer { gp in
            context.withUnsafeBufferPointer { cp in
                matmul(
                    true, false, m: he, n: outputs, k: b, cp.baseAddress!, he, gp.baseAddress!, outputs, beta: 1,
                    store.grad(wo), outputs)
            }
            dContext.withUnsafeMutableBufferPointer { dp in
                matmul(
                    false, true, m: b, n: he, k: outputs, gp.baseAddress!, outputs, store.value(wo), outputs,
                    dp.baseAddress!, he)
            }
        }
        var dq = [T](repeating: 0, count: b * he)
        var dk = [T](repeating: 0, count: b * t * he)
        var dv = [T](repeating: 0, count: b * t * he)
        let scale = 1 / T(e).squareRoot()
        var dA = [T](repeating: 0, count: t)
        for i in 0..<b {
            for hd in 0..<h {
                let a = (i * h + hd) * t, cOff = i * he + hd * e
                var weighted: T = 0
                for s in 0..<t where mask[i * t + s] {
                    let kvOff = (i * t + s) * he + hd * e
                    var dot: T = 0
                    for c in 0..<e {
                        dot += dContext[cOff + c] * v[kvOff + c]
                        dv[kvOff + c] += attention[a + s] * dContext[cOff + c]
                    }
                    dA[s] = dot
                    weighted += attention[a + s] * dot
                }
                for s in 0..<t where mask[i * t + s] {
                    let ds = attention[a + s] * (dA[s] - weighted) * scale
                    let kvOff = (i * t + s) * he + hd * e
                    for c in 0..<e {
                        dq[cOff + c] += ds * k[kvOff + c]
                        dk[kvOff + c] += ds * q[cOff + c]
                    }
                }
            }
        }
        func back(_ dProj: [T], input: [T], rows: Int, width: Int, _ w: ParameterView) -> [T] {
            var dx = [T].uninitialized(rows * width)
            dProj.withUnsafeBufferPointer { dp in
                input.withUnsafeBufferPointer { xp in
                    matmul(
                        true, false, m: width, n: he, k: rows, xp.baseAddress!, width, dp.baseAddress!, he, beta: 1,
                        store.grad(w), he)
                }
                dx.withUnsafeMutableBufferPointer { op in
                    matmul(
                        false, true, m: rows, n: width, k: he, dp.baseAddress!, he, store.value(w), he, op.baseAddress!,
                        width)
                }
            }
            return dx
        }
        let dQuery = back(dq, input: query, rows: b, width: queryWidth, wq)
        let dKeys = back(dk, input: keys, rows: b * t, width: keyWidth, wk)
        let dValues = back(dv, input: values, rows: b * t, width: keyWidth, wv)
        return (Tensor(rows: b, cols: queryWidth, data: dQuery), dKeys, dValues)
    }
}

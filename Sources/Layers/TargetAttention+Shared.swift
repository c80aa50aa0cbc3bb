/// Inference-only target attention over events shared between examples (serving: one user's
/// 1,000 candidates attend over subsets of the same history). The keys/values of each distinct
/// event are projected once (U rows) instead of once per slot (B·T rows); slot (b, t) refers to
/// event `index[b·T + t]` (−1 = padding). Same result as `forward` with the gathered rows; no
/// cache for `backward`.
extension TargetAttention {
    /// Output (B, outputs). `events` is (U, keyWidth), used as both keys and values.
    @_specialize(where T == Float)
    public func forwardShared(query: Tensor<T>, events: [T], index: [Int], length: Int) -> Tensor<T> {
        let b = query.rows, t = length, h = heads, e = headWidth, he = h * e
        precondition(query.cols == queryWidth && index.count == b * t && events.count % keyWidth == 0)
        let u = events.count / keyWidth
        func project(_ x: [T], rows: Int, width: Int, _ w: ParameterView) -> [T] {
            var out = [T](repeating: 0, count: rows * he)
            if rows == 0 { return out }
            x.withUnsafeBufferPointer { xp in
                out.withUnsafeMutableBufferPointer { op in
                    T.gemm(
                        .none, .none, m: rows, n: he, k: width, alpha: 1, a: xp.baseAddress!, lda: width,
                        b: store.value(w), ldb: he, beta: 0, c: op.baseAddress!, ldc: he)
                }
            }
            return out
        }
        let q = project(query.data, rows: b, width: queryWidth, wq)
        let k = project(events, rows: u, width: keyWidth, wk)
        let v = project(events, rows: u, width: keyWidth, wv)
        var context = [T](repeating: 0, count: b * he)
        let scale = 1 / T(e).squareRoot()
        var a = [T](repeating: 0, count: t)
        q.withUnsafeBufferPointer { qp in
            k.withUnsafeBufferPointer { kp in
                v.withUnsafeBufferPointer { vp in
                    context.withUnsafeMutableBufferPointer { cp in
                        for i in 0..<b {
                            for hd in 0..<h {
                                let qo = i * he + hd * e
                                var m = -T.infinity
                                for s in 0..<t {
                                    let j = index[i * t + s]
                                    if j < 0 { continue }
                                    var dot: T = 0
                                    let ko = j * he + hd * e
                                    for c in 0..<e { dot += qp[qo + c] * kp[ko + c] }
                                    a[s] = dot * scale
                                    m = Swift.max(m, a[s])
                                }
                                if m == -T.infinity { continue }
                                var total: T = 0
                                for s in 0..<t where index[i * t + s] >= 0 {
                                    a[s] = T.exp(a[s] - m)
                                    total += a[s]
                                }
                                for s in 0..<t {
                                    let j = index[i * t + s]
                                    if j < 0 { continue }
                                    let w = a[s] / total, vo = j * he + hd * e
                                    for c in 0..<e { cp[qo + c] += w * vp[vo + c] }
                                }
                            }
                        }
                    }
                }
            }
        }
        var out = [T](repeating: 0, count: b * outputs)
        context.withUnsafeBufferPointer { cp in
            out.withUnsafeMutableBufferPointer { op in
                T.gemm(
                    .none, .none, m: b, n: outputs, k: he, alpha: 1, a: cp.baseAddress!, lda: he, b: store.value(wo),
                    ldb: outputs, beta: 0, c: op.baseAddress!, ldc: outputs)
            }
        }
        return Tensor(rows: b, cols: outputs, data: out)
    }
}

/// Transformer sequence encoder (TransAct / SASRec style) with the candidate as the final token.
///
/// Per example: L event slots (oldest first, padded; `mask` true = real event) and one candidate
/// token. Token inputs: event encoding + learned position embedding by recency (0 = the most
/// recent real event), candidate + the position row L. Then `layers` post-LN blocks:
/// X ← LN(X + MHA(X)); X ← LN(X + W2·ReLU(W1·X + b1) + b2). Attention is masked so that event
/// tokens see only real events at or before their own slot (causal) and never the candidate,
/// while the candidate token sees every real event and itself. The event tokens therefore do not
/// depend on the candidate: serving encodes them once per request (`forwardRequest`) and only the
/// candidate's row is per candidate. Output: the candidate token's final hidden state (B, width).
///
/// Shapes: events (B·L, width), row b·L + t; mask (B·L); candidate (B, width). Heads split the
/// width (head width = width / heads). FFN hidden width `ffnWidth`.
/// Cost per example and layer: ~(L+1)²·width·4 flops of attention + (L+1)·width²·(8 + 4·ffn/width).
public final class SequenceTransformer<T: Real> {
    public let width: Int, length: Int, heads: Int, ffnWidth: Int
    public let store: ParameterStore<T>
    /// Position embeddings (length + 1, width): rows 0 ..< length by recency, row `length` the
    /// candidate's.
    public let position: ParameterView
    /// One post-LN block: q/k/v projections (no bias), output projection, LN, FFN, LN.
    public struct Block {
        public let q: Linear<T>, k: Linear<T>, v: Linear<T>, o: Linear<T>
        public let norm1: LayerNorm<T>, ffn1: Linear<T>, ffn2: Linear<T>, norm2: LayerNorm<T>
    }
    public let blocks: [Block]

    private var b = 0
    private var mask: [Bool] = []
    private var recency: [Int] = []
    /// Per block: queries, keys, values (N, width), attention (B, heads, S, S), FFN pre-activation.
    private var qs: [[T]] = [], ks: [[T]] = [], vs: [[T]] = [], attentions: [[T]] = [], hidden: [[T]] = []

    public init(
        _ store: ParameterStore<T>, name: String, width: Int, length: Int, heads: Int, layers: Int, ffnWidth: Int
    ) {
        precondition(width % heads == 0, "SequenceTransformer: width \(width) not divisible by \(heads) heads")
        self.store = store
        self.width = width
        self.length = length
        self.heads = heads
        self.ffnWidth = ffnWidth
        position = store.add("\(name).position", shape: [length + 1, width], .normal(std: 0.01))
        blocks = (0..<layers).map { l in
            let p = "\(name).\(l)"
            return Block(
                q: Linear(store, name: "\(p).q", inputs: width, outputs: width, bias: false),
                k: Linear(store, name: "\(p).k", inputs: width, outputs: width, bias: false),
                v: Linear(store, name: "\(p).v", inputs: width, outputs: width, bias: false),
                o: Linear(store, name: "\(p).o", inputs: width, outputs: width),
                norm1: LayerNorm(store, name: "\(p).norm1", width: width),
                ffn1: Linear(store, name: "\(p).ffn1", inputs: width, outputs: ffnWidth),
                ffn2: Linear(store, name: "\(p).ffn2", inputs: ffnWidth, outputs: width),
                norm2: LayerNorm(store, name: "\(p).norm2", width: width))
        }
    }

    /// Tokens per example (L events + the candidate).
    var tokens: Int { length + 1 }

    /// Masked multi-head attention of `count` examples of S tokens each: query token i may attend
    /// to key token s when `allowed(example, i, s)`; a row with no allowed key gets zero context.
    /// Returns the context (N, width) and the attention weights (count, heads, S, S).
    @_specialize(where T == Float)
    static func attend(
        q: [T], k: [T], v: [T], count: Int, tokens s: Int, heads h: Int, width: Int,
        allowed: (Int, Int, Int) -> Bool
    ) -> (context: [T], attention: [T]) {
        let e = width / h, scale = 1 / T(e).squareRoot()
        var context = [T](repeating: 0, count: count * s * width)
        var attention = [T](repeating: 0, count: count * h * s * s)
        for i in 0..<count {
            for hd in 0..<h {
                for r in 0..<s {
                    let a = ((i * h + hd) * s + r) * s, qo = (i * s + r) * width + hd * e
                    var m = -T.infinity
                    for c in 0..<s where allowed(i, r, c) {
                        var dot: T = 0
                        let ko = (i * s + c) * width + hd * e
                        for x in 0..<e { dot += q[qo + x] * k[ko + x] }
                        attention[a + c] = dot * scale
                        m = Swift.max(m, dot * scale)
                    }
                    if m == -T.infinity { continue }
                    var total: T = 0
                    for c in 0..<s where allowed(i, r, c) {
                        attention[a + c] = T.exp(attention[a + c] - m)
                        total += attention[a + c]
                    }
                    for c in 0..<s where allowed(i, r, c) {
                        attention[a + c] /= total
                        let w = attention[a + c], vo = (i * s + c) * width + hd * e
                        for x in 0..<e { context[qo + x] += w * v[vo + x] }
                    }
                }
            }
        }
        return (context, attention)
    }

    /// Output (B, width): the candidate token's final hidden state. `events` (B·L, width), `mask`
    /// (B·L), `candidate` (B, width).
    @_specialize(where T == Float)
    public func forward(events: [T], mask: [Bool], candidate: Tensor<T>) -> Tensor<T> {
        b = candidate.rows
        let l = length, s = tokens, d = width
        precondition(candidate.cols == d, "SequenceTransformer: candidate width \(candidate.cols), expected \(d)")
        precondition(
            events.count == b * l * d && mask.count == b * l,
            "SequenceTransformer: events/mask do not match (B, L) = (\(b), \(l))")
        self.mask = mask
        recency = [Int](repeating: -1, count: b * l)
        var x = [T](repeating: 0, count: b * s * d)
        let pos = store.value(position)
        for i in 0..<b {
            var r = 0
            for t in stride(from: l - 1, through: 0, by: -1) where mask[i * l + t] {
                recency[i * l + t] = r
                for c in 0..<d { x[(i * s + t) * d + c] = events[(i * l + t) * d + c] + pos[r * d + c] }
                r += 1
            }
            for c in 0..<d { x[(i * s + l) * d + c] = candidate.data[i * d + c] + pos[l * d + c] }
        }
        qs = []; ks = []; vs = []; attentions = []; hidden = []
        let rows = b * s
        let allowed: (Int, Int, Int) -> Bool = { i, r, c in
            if c == l { return r == l }  // the candidate key: only the candidate's own query
            guard mask[i * l + c] else { return false }
            return r == l || (c <= r && mask[i * l + r])
        }
        for block in blocks {
            let input = Tensor(rows: rows, cols: d, data: x)
            let q = block.q.forward(input).data, k = block.k.forward(input).data, v = block.v.forward(input).data
            let (context, attention) = Self.attend(
                q: q, k: k, v: v, count: b, tokens: s, heads: heads, width: d, allowed: allowed)
            qs.append(q); ks.append(k); vs.append(v); attentions.append(attention)
            var r1 = block.o.forward(Tensor(rows: rows, cols: d, data: context))
            for j in r1.data.indices { r1.data[j] += x[j] }
            let x1 = block.norm1.forward(r1)
            let pre = block.ffn1.forward(x1)
            hidden.append(pre.data)
            var r2 = block.ffn2.forward(Tensor(rows: rows, cols: ffnWidth, data: pre.data.map { Swift.max($0, 0) }))
            for j in r2.data.indices { r2.data[j] += x1.data[j] }
            x = block.norm2.forward(r2).data
        }
        var out = [T](repeating: 0, count: b * d)
        for i in 0..<b { for c in 0..<d { out[i * d + c] = x[(i * s + l) * d + c] } }
        return Tensor(rows: b, cols: d, data: out)
    }

    /// Gradients of events (B·L, width; zero at padding) and candidate (B, width) from
    /// dL/doutput (B, width); adds the parameters' gradients to the store.
    @_specialize(where T == Float)
    public func backward(_ dOut: Tensor<T>) -> (events: [T], candidate: Tensor<T>) {
        let l = length, s = tokens, d = width, rows = b * s, h = heads, e = d / h
        let scale = 1 / T(e).squareRoot()
        var dx = [T](repeating: 0, count: rows * d)
        for i in 0..<b { for c in 0..<d { dx[(i * s + l) * d + c] = dOut.data[i * d + c] } }
        for (n, block) in blocks.enumerated().reversed() {
            let dr2 = block.norm2.backward(Tensor(rows: rows, cols: d, data: dx))
            var dPre = block.ffn2.backward(dr2).data
            let pre = hidden[n]
            for j in dPre.indices where pre[j] <= 0 { dPre[j] = 0 }
            var dx1 = block.ffn1.backward(Tensor(rows: rows, cols: ffnWidth, data: dPre))
            for j in dx1.data.indices { dx1.data[j] += dr2.data[j] }
            let dr1 = block.norm1.backward(dx1)
            let dContext = block.o.backward(dr1).data
            let q = qs[n], k = ks[n], v = vs[n], attention = attentions[n]
            var dq = [T](repeating: 0, count: rows * d), dk = dq, dv = dq
            var dA = [T](repeating: 0, count: s)
            for i in 0..<b {
                for hd in 0..<h {
                    for r in 0..<s {
                        let a = ((i * h + hd) * s + r) * s, qo = (i * s + r) * d + hd * e
                        var weighted: T = 0
                        for c in 0..<s where attention[a + c] != 0 {
                            let vo = (i * s + c) * d + hd * e
                            var dot: T = 0
                            for x in 0..<e {
                                dot += dContext[qo + x] * v[vo + x]
                                dv[vo + x] += attention[a + c] * dContext[qo + x]
                            }
                            dA[c] = dot
                            weighted += attention[a + c] * dot
                        }
                        for c in 0..<s where attention[a + c] != 0 {
                            let ds = attention[a + c] * (dA[c] - weighted) * scale, ko = (i * s + c) * d + hd * e
                            for x in 0..<e {
                                dq[qo + x] += ds * k[ko + x]
                                dk[ko + x] += ds * q[qo + x]
                            }
                        }
                    }
                }
            }
            dx = dr1.data
            for (lin, g) in [(block.q, dq), (block.k, dk), (block.v, dv)] {
                let gx = lin.backward(Tensor(rows: rows, cols: d, data: g)).data
                for j in dx.indices { dx[j] += gx[j] }
            }
        }
        let dPos = store.grad(position)
        var dEvents = [T](repeating: 0, count: b * l * d), dCandidate = [T](repeating: 0, count: b * d)
        for i in 0..<b {
            for t in 0..<l where mask[i * l + t] {
                let r = recency[i * l + t]
                for c in 0..<d {
                    let g = dx[(i * s + t) * d + c]
                    dEvents[(i * l + t) * d + c] = g
                    dPos[r * d + c] += g
                }
            }
            for c in 0..<d {
                let g = dx[(i * s + l) * d + c]
                dCandidate[i * d + c] = g
                dPos[l * d + c] += g
            }
        }
        return (dEvents, Tensor(rows: b, cols: d, data: dCandidate))
    }

    /// Inference for one request: `count` events (count, width; oldest first, all real, at most
    /// `length` — the most recent ones) shared by `candidates` (n, width). The event tokens are
    /// encoded once (they never attend to a candidate), then each block's candidate rows attend
    /// to the events' keys/values and to themselves, as gemms over all candidates. Same result as
    /// `forward` with every example holding these events (up to float rounding); no cache for
    /// `backward`. Output (n, width).
    @_specialize(where T == Float)
    public func forwardRequest(events: [T], count m: Int, candidates: Tensor<T>) -> Tensor<T> {
        let d = width, l = length, n = candidates.rows, h = heads, e = d / h
        precondition(m <= l && events.count >= m * d && candidates.cols == d)
        let pos = store.value(position)
        var xe = [T](repeating: 0, count: m * d)
        for t in 0..<m { for c in 0..<d { xe[t * d + c] = events[t * d + c] + pos[(m - 1 - t) * d + c] } }
        var xc = candidates.data
        for i in 0..<n { for c in 0..<d { xc[i * d + c] += pos[l * d + c] } }
        let scale = 1 / T(e).squareRoot()
        func post(_ block: Block, _ context: [T], _ x: [T], rows: Int) -> [T] {
            var r1 = block.o.forward(Tensor(rows: rows, cols: d, data: context))
            for j in r1.data.indices { r1.data[j] += x[j] }
            let x1 = block.norm1.forward(r1)
            let pre = block.ffn1.forward(x1)
            var r2 = block.ffn2.forward(Tensor(rows: rows, cols: ffnWidth, data: pre.data.map { Swift.max($0, 0) }))
            for j in r2.data.indices { r2.data[j] += x1.data[j] }
            return block.norm2.forward(r2).data
        }
        for (n2, block) in blocks.enumerated() {
            // Events: keys/values for the candidates; their own causal pass only when a later
            // block needs their next state.
            let ein = Tensor(rows: m, cols: d, data: xe)
            let ke = m > 0 ? block.k.forward(ein).data : [], ve = m > 0 ? block.v.forward(ein).data : []
            if n2 + 1 < blocks.count, m > 0 {
                let qe = block.q.forward(ein).data
                let (context, _) = Self.attend(
                    q: qe, k: ke, v: ve, count: 1, tokens: m, heads: h, width: d, allowed: { _, r, c in c <= r })
                xe = post(block, context, xe, rows: m)
            }
            let cin = Tensor(rows: n, cols: d, data: xc)
            let qc = block.q.forward(cin).data, kc = block.k.forward(cin).data, vc = block.v.forward(cin).data
            var context = [T](repeating: 0, count: n * d)
            var scores = [T](repeating: 0, count: n * (m + 1))
            for hd in 0..<h {
                qc.withUnsafeBufferPointer { qp in
                    ke.withUnsafeBufferPointer { kp in
                        scores.withUnsafeMutableBufferPointer { sp in
                            if m > 0 {
                                T.gemm(
                                    .none, .transpose, m: n, n: m, k: e, alpha: scale, a: qp.baseAddress! + hd * e,
                                    lda: d, b: kp.baseAddress! + hd * e, ldb: d, beta: 0, c: sp.baseAddress!,
                                    ldc: m + 1)
                            }
                        }
                    }
                }
                for i in 0..<n {
                    let row = i * (m + 1)
                    var dot: T = 0
                    for x in 0..<e { dot += qc[i * d + hd * e + x] * kc[i * d + hd * e + x] }
                    scores[row + m] = dot * scale
                    var mx = -T.infinity
                    for c in 0...m { mx = Swift.max(mx, scores[row + c]) }
                    var total: T = 0
                    for c in 0...m {
                        scores[row + c] = T.exp(scores[row + c] - mx)
                        total += scores[row + c]
                    }
                    for c in 0...m { scores[row + c] /= total }
                    let w = scores[row + m]
                    for x in 0..<e { context[i * d + hd * e + x] = w * vc[i * d + hd * e + x] }
                }
                if m > 0 {
                    scores.withUnsafeBufferPointer { sp in
                        ve.withUnsafeBufferPointer { vp in
                            context.withUnsafeMutableBufferPointer { cp in
                                T.gemm(
                                    .none, .none, m: n, n: e, k: m, alpha: 1, a: sp.baseAddress!, lda: m + 1,
                                    b: vp.baseAddress! + hd * e, ldb: d, beta: 1, c: cp.baseAddress! + hd * e, ldc: d)
                            }
                        }
                    }
                }
            }
            xc = post(block, context, xc, rows: n)
        }
        return Tensor(rows: n, cols: d, data: xc)
    }
}

import CKernels
import Foundation
import Layers
import Linalg

/// The serving fast path of a `RankerModel<Float>`: scores one request — many candidates for ONE
/// user at ONE time — with the same result as `CTRData.batch` + `RankerModel.logits(training:
/// false)` (up to float rounding), but with everything that depends only on the user computed
/// once per request instead of once per candidate:
///
/// - the user's history before the request time is encoded once (pin embedding + event type +
///   time bucket), (H, dim), and projected once to the ESU's keys and values (H, heads·dim);
/// - DIN: every candidate attends over the same last `shortLength` events, so scores, softmax
///   and context are three gemms over all candidates, (n, L) and (n, dim);
/// - SIM hard search reads the per-user category index (built once per user by
///   `SequenceSource`): a binary search per candidate, no copies;
/// - SIM soft search is one gemm of the candidates' content (n, w) by the history's content
///   (w, H), in blocks of `softBlock` candidates, then an exact per-candidate top-K (ties to the
///   older event, as `TopKHeap`): a threshold from the row's mean and std (from the history's
///   content mean and second moment, not a pass over the scores), a branch-free filter of the
///   survivors' indices and a branch-free quickselect of their keys (`mosaic_top_k_row`);
/// - the ESU's target attention runs per candidate over its ≤ K event indices
///   (`mosaic_attend_selected`: AVX-512 dots and a vectorised exp); the output projection is
///   one gemm;
/// - x0 = [field embeddings ‖ dense ‖ content ‖ ESU ‖ DIN] is written block by block into one
///   buffer (the attention outputs by their projection gemm, ldc = x0's width), and the dense
///   network runs forward-only (`DenseForward`: no training caches, bias and activation fused,
///   the request's constant user/context columns folded into the first cross layer).
///
/// Scratch buffers are kept between requests and only grow (`Workspace`): once the largest
/// request has been served nothing is allocated per request but the returned logits. A scorer
/// is not thread-safe: one per thread.
public final class RequestScorer {
    public let model: RankerModel<Float>
    /// Candidates per block of the soft-search gemm (the (block, H) score tile stays in cache).
    public var softBlock = 64
    private var survivors: [UInt64] = []
    private var survivorIndex: [Int32] = []
    /// Embedding-table rows of the request's fields, or of the history's pins.
    private var tableRows: [Int32] = []
    private(set) var gsuIndex: [Int32] = [], gsuCount: [Int32] = []
    private var weights: [Float] = []

    /// The forward-only DCN-v2 + MMoE (no training caches, workspaces reused across requests).
    let dense: DenseForward
    /// Scratch buffers of the request (x0, the encoded history, projections, scores…).
    let ws = Workspace()

    /// Fold the input columns shared by every candidate of a request (user and context fields)
    /// into the first cross layer's bias (`DenseForward`); on by default. Same logits up to
    /// float summation order.
    public var foldConstantColumns: Bool {
        get { dense.foldConstantColumns }
        set { dense.foldConstantColumns = newValue }
    }

    /// Input columns folded into the first cross layer in the last request.
    public var lastConstantColumns: Int { dense.lastConstantColumns }

    /// Floats held in the scorer's reusable buffers (they only grow, to the largest request).
    public var workspaceFloats: Int { ws.heldFloats + dense.workspaceFloats }

    public init(_ model: RankerModel<Float>) {
        self.model = model
        dense = DenseForward(model)
    }

    // Workspace slots of the request.
    enum Slot: Int {
        case x0, history, historyContent, mu, second, projected, softScores, query, keys, values, context, scores
        case dinQuery, dinKeys, dinValues, dinContext, recentHistory
    }

    /// Per-task logits (tasks × n) of the examples `range` of `data`, which must all have the
    /// same user and time in `data.sequences` (when the model uses sequences). Position nulled.
    public func logits(_ data: CTRData, range: Range<Int>) throws -> [[Float]] {
        let c = model.config, n = range.count, f = c.fields, d = c.dim
        guard n > 0 else { return [[Float]](repeating: [], count: c.tasks.count) }
        let table = model.table, width = c.inputWidth
        // x0 (n, width) = [field embeddings ‖ dense ‖ content ‖ ESU ‖ DIN], each block written
        // straight into its columns (no per-part tensors, no concatenation).
        let x0 = ws.floats(Slot.x0.rawValue, n * width)
        // Table rows first (hashing), then the copies with the rows a few examples ahead
        // prefetched: the table is larger than L2, and the candidate fields miss.
        if tableRows.count < n * f { tableRows = [Int32](repeating: 0, count: n * f) }
        tableRows.withUnsafeMutableBufferPointer { rows in
            data.ids.withUnsafeBufferPointer { ids in
                for q in 0..<n * f {
                    let id = ids[range.lowerBound * f + q], j = q % f
                    let r = c.hashIDs ? table.row(forID: id, salt: j) : Int(id)
                    precondition(
                        r >= 0 && r < table.rows, "EmbeddingTable \(table.name): row \(r) outside 0..<\(table.rows)")
                    rows[q] = Int32(r)
                }
            }
            table.values.withUnsafeBufferPointer { v in
                let ahead = min(n, 4)
                for q in 0..<ahead * f { mosaic_prefetch(v.baseAddress! + Int(rows[q]) * d) }
                for i in 0..<n {
                    if i + ahead < n {
                        for j in 0..<f { mosaic_prefetch(v.baseAddress! + Int(rows[(i + ahead) * f + j]) * d) }
                    }
                    let row = x0 + i * width
                    for j in 0..<f { Self.copy(v.baseAddress! + Int(rows[i * f + j]) * d, to: row + j * d, d) }
                }
            }
        }
        var offset = f * d
        for (w, source) in [(c.denseWidth, data.dense), (c.contentWidth, data.content)] where w > 0 {
            precondition(
                source.count >= range.upperBound * w,
                "request scorer: \(source.count) values for \(range.upperBound) rows of \(w)")
            source.withUnsafeBufferPointer { s in
                for i in 0..<n {
                    Self.copy(s.baseAddress! + (range.lowerBound + i) * w, to: x0 + i * width + offset, w)
                }
            }
            offset += w
        }
        if c.usesSequences {
            guard let src = data.sequences else {
                throw RankerError("request scorer: the model uses sequences but the data has no histories")
            }
            let u = src.exampleUser[range.lowerBound], t = src.exampleTime[range.lowerBound]
            for i in range where src.exampleUser[i] != u || src.exampleTime[i] != t {
                throw RankerError(
                    "request scorer: example \(i) has user \(src.exampleUser[i]) at \(src.exampleTime[i]), the request's first has user \(u) at \(t) (one request = one user at one time)"
                )
            }
            let start = src.offsets[u], end = src.end(user: u, before: t), h = end - start
            // The user's history, encoded once: (H, d).
            let history = encodeHistory(src, start: start, end: end, time: t, into: .history)
            // The attention query: the candidate field's embedding, read in place from x0.
            let query = UnsafePointer(x0 + c.candidateField * d)
            if let esu = model.esu {
                selectEvents(src, data: data, range: range, user: u, start: start, end: end)
                attendSelected(
                    esu, query: query, ldq: width, n: n, history: history, events: h, into: x0 + offset, ldo: width)
                offset += esu.outputs
            }
            if let din = model.din {
                let l = min(c.shortLength, h)
                attendAll(
                    din, query: query, ldq: width, n: n, events: history + (h - l) * d, count: l, into: x0 + offset,
                    ldo: width)
                offset += din.outputs
            }
            if let transformer = model.transformer {
                // The transformer's event tokens: the last L events, encoded once per request
                // (with or without the time bucket) and passed through its blocks once; only the
                // candidate's rows are per candidate.
                let l = min(c.transformerLength, h)
                let events =
                    c.transformerTime
                    ? history + (h - l) * d
                    : encodeHistory(src, start: end - l, end: end, time: t, into: .recentHistory, withTime: false)
                var cand = Tensor<Float>.zeros(n, d)
                cand.data.withUnsafeMutableBufferPointer { cp in
                    for i in 0..<n { Self.copy(query + i * width, to: cp.baseAddress! + i * d, d) }
                }
                var tokens = Array(UnsafeBufferPointer(start: events, count: l * d))
                if let projection = model.transformerContent {
                    // Content of the events' pins and of the candidates, projected into the tokens.
                    let w = c.contentWidth, weight = model.parameters.value(projection.weight)
                    precondition(
                        src.width == w, "request scorer: history embeddings are \(src.width) wide, content \(w)")
                    var eventContent = [Float](repeating: 0, count: max(1, l) * w)
                    src.pinEmbedding.withUnsafeBufferPointer { emb in
                        eventContent.withUnsafeMutableBufferPointer { ec in
                            for j in 0..<l {
                                Self.copy(
                                    emb.baseAddress! + Int(src.pin[end - l + j]) * w, to: ec.baseAddress! + j * w, w)
                            }
                        }
                    }
                    if l > 0 {
                        BLAS.gemm(
                            .none, .none, m: l, n: d, k: w, alpha: 1, a: eventContent, lda: w, b: weight, ldb: d,
                            beta: 1, c: &tokens, ldc: d)
                    }
                    data.content.withUnsafeBufferPointer { cp in
                        BLAS.gemm(
                            .none, .none, m: n, n: d, k: w, alpha: 1, a: cp.baseAddress! + range.lowerBound * w, lda: w,
                            b: weight, ldb: d, beta: 1, c: &cand.data, ldc: d)
                    }
                }
                let out = transformer.forwardRequest(events: tokens, count: l, candidates: cand)
                out.data.withUnsafeBufferPointer { op in
                    for i in 0..<n { Self.copy(op.baseAddress! + i * d, to: x0 + i * width + offset, d) }
                }
                offset += d
            }
        }
        precondition(offset == width, "request scorer: filled \(offset) input columns of \(width)")
        return dense.logits(x0, rows: n)
    }

    /// Events `start ..< end` encoded as pin row + type + time bucket at `time`, (H, d), in the
    /// history slot.
    func encodeHistory(
        _ src: SequenceSource, start: Int, end: Int, time: Int64, into slot: Slot, withTime: Bool = true
    ) -> UnsafeMutablePointer<Float> {
        let c = model.config, d = c.dim, h = end - start
        let o = ws.floats(slot.rawValue, max(1, h) * d)
        guard h > 0 else { return o }
        let te = model.parameters.value(model.typeEmbedding!), tm = model.parameters.value(model.timeEmbedding!)
        let table = model.table, salt = c.candidateField
        if tableRows.count < h { tableRows = [Int32](repeating: 0, count: h) }
        for j in 0..<h {
            let p = src.pin[start + j]
            tableRows[j] = Int32(c.hashIDs ? table.row(forID: p, salt: salt) : Int(p))
        }
        table.values.withUnsafeBufferPointer { v in
            for j in 0..<min(h, 8) { mosaic_prefetch(v.baseAddress! + Int(tableRows[j]) * d) }
            for j in 0..<h {
                if j + 8 < h { mosaic_prefetch(v.baseAddress! + Int(tableRows[j + 8]) * d) }
                let r = Int(tableRows[j]) * d
                let ty = Int(src.type[start + j]) * d
                let b = SequenceSource.bucket(sinceMs: time - src.time[start + j], buckets: c.timeBuckets) * d
                if withTime {
                    for k in 0..<d { o[j * d + k] = v[r + k] + te[ty + k] + tm[b + k] }
                } else {
                    for k in 0..<d { o[j * d + k] = v[r + k] + te[ty + k] }
                }
            }
        }
        return o
    }

    /// GSU for every candidate of the request: local event indices (into the history) in
    /// `gsuIndex[i·K ..< i·K + gsuCount[i]]`.
    func selectEvents(_ src: SequenceSource, data: CTRData, range: Range<Int>, user u: Int, start: Int, end: Int) {
        let c = model.config, k = c.simK, n = range.count, h = end - start
        if gsuIndex.count < n * k { gsuIndex = [Int32](repeating: 0, count: n * k) }
        if gsuCount.count < n { gsuCount = [Int32](repeating: 0, count: n) }
        if c.simSearch == "hard" {
            let index = src.categoryIndex[u]
            gsuIndex.withUnsafeMutableBufferPointer { idx in
                gsuCount.withUnsafeMutableBufferPointer { cnt in
                    for i in 0..<n {
                        guard let list = index[src.exampleCategory[range.lowerBound + i]] else {
                            cnt[i] = 0
                            continue
                        }
                        list.withUnsafeBufferPointer { lp in
                            var lo = 0, hi = lp.count
                            while lo < hi {
                                let mid = (lo + hi) / 2
                                if lp[mid] < end { lo = mid + 1 } else { hi = mid }
                            }
                            let first = max(0, lo - k)
                            for s in first..<lo { idx[i * k + s - first] = Int32(lp[s] - start) }
                            cnt[i] = Int32(lo - first)
                        }
                    }
                }
            }
            return
        }
        // Soft search: scores = candidates' content (n, w) · history content (w, H).
        let w = src.width
        precondition(w == c.contentWidth, "request scorer: history embeddings are \(w) wide, content \(c.contentWidth)")
        if h <= k {
            for i in 0..<n {
                for j in 0..<h { gsuIndex[i * k + j] = Int32(j) }
                gsuCount[i] = Int32(h)
            }
            return
        }
        let historyContent = ws.floats(Slot.historyContent.rawValue, h * w)
        src.pinEmbedding.withUnsafeBufferPointer { emb in
            for j in 0..<min(h, 8) { mosaic_prefetch(emb.baseAddress! + Int(src.pin[start + j]) * w) }
            for j in 0..<h {
                if j + 8 < h { mosaic_prefetch(emb.baseAddress! + Int(src.pin[start + j + 8]) * w) }
                Self.copy(emb.baseAddress! + Int(src.pin[start + j]) * w, to: historyContent + j * w, w)
            }
        }
        let block = max(1, softBlock)
        let softScores = ws.floats(Slot.softScores.rawValue, block * h)
        if survivors.count < h + 8 { survivors = [UInt64](repeating: 0, count: h + 8) }
        if survivorIndex.count < h + 16 { survivorIndex = [Int32](repeating: 0, count: h + 16) }
        // Each row's mean and variance without a pass over its scores: with the history's mean
        // content μ (w) and second moment M = Hᵀ·H / H (w, w), row i has mean c_i·μ and mean
        // square c_iᵀ·M·c_i.
        let mu = ws.floats(Slot.mu.rawValue, w), second = ws.floats(Slot.second.rawValue, w * w)
        mu.update(repeating: 0, count: w)
        for j in 0..<h { for a in 0..<w { mu[a] += historyContent[j * w + a] } }
        BLAS.gemm(
            .transpose, .none, m: w, n: w, k: h, alpha: 1 / Float(h), a: historyContent, lda: w,
            b: historyContent, ldb: w, beta: 0, c: second, ldc: w)
        for a in 0..<w { mu[a] /= Float(h) }
        let projected = ws.floats(Slot.projected.rawValue, block * w)
        let z = Float(Self.upperQuantile(min(0.5, survivorFactor * Double(k) / Double(h))))
        data.content.withUnsafeBufferPointer { cp in
            survivors.withUnsafeMutableBufferPointer { keys in
                survivorIndex.withUnsafeMutableBufferPointer { sidx in
                    gsuIndex.withUnsafeMutableBufferPointer { idx in
                        var b0 = 0
                        while b0 < n {
                            let m = min(block, n - b0)
                            let cb = cp.baseAddress! + (range.lowerBound + b0) * w
                            BLAS.gemm(
                                .none, .transpose, m: m, n: h, k: w, alpha: 1, a: cb, lda: w, b: historyContent, ldb: w,
                                beta: 0, c: softScores, ldc: h)
                            BLAS.gemm(
                                .none, .none, m: m, n: w, k: w, alpha: 1, a: cb, lda: w, b: second, ldb: w, beta: 0,
                                c: projected, ldc: w)
                            for r in 0..<m {
                                let c = cb + r * w
                                let mean = VectorKernels.dot(c, mu, w)
                                let square = VectorKernels.dot(c, projected + r * w, w)
                                let std = max(0, square - mean * mean).squareRoot()
                                Self.topK(
                                    softScores + r * h, count: h, k: k, mean: mean, std: std, z: z,
                                    keys: keys.baseAddress!, indices: sidx.baseAddress!,
                                    into: idx.baseAddress! + (b0 + r) * k)
                            }
                            b0 += m
                        }
                    }
                }
            }
        }
        for i in 0..<n { gsuCount[i] = Int32(k) }
    }

    /// z with P(N(0, 1) > z) = p (bisection on erfc; once per request).
    static func upperQuantile(_ p: Double) -> Double {
        var lo = -8.0, hi = 8.0
        for _ in 0..<60 {
            let mid = (lo + hi) / 2
            if 0.5 * erfc(mid / 2.0.squareRoot()) > p { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    /// Exact top-`k` of the `h` scores at `s` (larger score first, ties to the smaller index —
    /// `TopKHeap`'s rule), their indices written to `out[0 ..< k]` (any order); `h > k`.
    /// `keys` holds `h` values, `indices` `h + 16`. `z`: `upperQuantile(survivorFactor·k/h)`.
    ///
    /// 1. A threshold τ = mean + z·std of the row (`mean`, `std`: the row's, computed by the
    ///    caller), so that about `survivorFactor`·k scores are at or above it when scores are
    ///    roughly normal; 2. the indices of the survivors ≥ τ, branch-free (AVX-512 compress) —
    ///    τ is lowered by std/4 until there are ≥ k (any distribution is exact, only slower);
    ///    3. a branch-free quickselect of the k largest (score, older event) keys. Steps 2–3 are
    ///    `mosaic_top_k_row` in CKernels.
    @inline(__always)
    static func topK(
        _ s: UnsafePointer<Float>, count h: Int, k: Int, mean: Float, std: Float, z: Float,
        keys: UnsafeMutablePointer<UInt64>, indices: UnsafeMutablePointer<Int32>, into out: UnsafeMutablePointer<Int32>
    ) {
        mosaic_top_k_row(s, h, k, mean + z * std, std / 4, 12, keys, indices, out)
    }

    /// Expected survivors of the soft-search threshold per k (more: a longer quickselect; fewer:
    /// more rows need a second, lower threshold).
    public var survivorFactor = 1.25

    /// ESU: per candidate, multi-head attention over its GSU events, written to
    /// `out` (n, outputs) with leading dimension `ldo`. `query` is (n, queryWidth), leading
    /// dimension `ldq`; `history` (H, keyWidth).
    func attendSelected(
        _ att: TargetAttention<Float>, query: UnsafePointer<Float>, ldq: Int, n: Int, history: UnsafePointer<Float>,
        events h: Int, into out: UnsafeMutablePointer<Float>, ldo: Int
    ) {
        let heads = att.heads, e = att.headWidth, he = heads * e, k = model.config.simK, d = att.keyWidth
        let q = ws.floats(Slot.query.rawValue, n * he)
        project(query, lda: ldq, rows: n, width: att.queryWidth, att.store.value(att.wq), he, into: q, ldc: he)
        let keys = ws.floats(Slot.keys.rawValue, max(1, h) * he),
            values = ws.floats(Slot.values.rawValue, max(1, h) * he)
        project(history, lda: d, rows: h, width: d, att.store.value(att.wk), he, into: keys, ldc: he)
        project(history, lda: d, rows: h, width: d, att.store.value(att.wv), he, into: values, ldc: he)
        let context = ws.floats(Slot.context.rawValue, n * he)
        if weights.count < k + 16 { weights = [Float](repeating: 0, count: k + 16) }
        let scale = 1 / Float(e).squareRoot()
        // CKernels: AVX-512 dots with one reduction per event, a 16-lane exp, FMAs into the context.
        gsuIndex.withUnsafeBufferPointer { ip in
            gsuCount.withUnsafeBufferPointer { counts in
                weights.withUnsafeMutableBufferPointer { a in
                    mosaic_attend_selected(
                        q, he, keys, values, he, ip.baseAddress!, counts.baseAddress!, n, k, heads, e, scale, context,
                        he,
                        a.baseAddress!)
                }
            }
        }
        project(context, lda: he, rows: n, width: he, att.store.value(att.wo), att.outputs, into: out, ldc: ldo)
    }

    /// DIN: every candidate attends over the same `count` events (count, d): scores, softmax and
    /// context as gemms over all candidates, written to `out` (n, outputs), leading dimension `ldo`.
    func attendAll(
        _ att: TargetAttention<Float>, query: UnsafePointer<Float>, ldq: Int, n: Int, events: UnsafePointer<Float>,
        count l: Int, into out: UnsafeMutablePointer<Float>, ldo: Int
    ) {
        let heads = att.heads, e = att.headWidth, he = heads * e, d = att.keyWidth
        guard l > 0 else {
            for i in 0..<n { (out + i * ldo).update(repeating: 0, count: att.outputs) }
            return
        }
        let q = ws.floats(Slot.dinQuery.rawValue, n * he)
        project(query, lda: ldq, rows: n, width: att.queryWidth, att.store.value(att.wq), he, into: q, ldc: he)
        let keys = ws.floats(Slot.dinKeys.rawValue, l * he), values = ws.floats(Slot.dinValues.rawValue, l * he)
        project(events, lda: d, rows: l, width: d, att.store.value(att.wk), he, into: keys, ldc: he)
        project(events, lda: d, rows: l, width: d, att.store.value(att.wv), he, into: values, ldc: he)
        let context = ws.floats(Slot.dinContext.rawValue, n * he)
        let scores = ws.floats(Slot.scores.rawValue, n * l)
        let scale = 1 / Float(e).squareRoot()
        for hd in 0..<heads {
            BLAS.gemm(
                .none, .transpose, m: n, n: l, k: e, alpha: scale, a: q + hd * e, lda: he, b: keys + hd * e, ldb: he,
                beta: 0, c: scores, ldc: l)
            mosaic_softmax_rows(scores, n, l, l)  // CKernels: 16-lane exp
            BLAS.gemm(
                .none, .none, m: n, n: e, k: l, alpha: 1, a: scores, lda: l, b: values + hd * e, ldb: he, beta: 0,
                c: context + hd * e, ldc: he)
        }
        project(context, lda: he, rows: n, width: he, att.store.value(att.wo), att.outputs, into: out, ldc: ldo)
    }

    /// c (rows, out; leading dimension ldc) = x (rows, width; leading dimension lda) · w (width, out).
    func project(
        _ x: UnsafePointer<Float>, lda: Int, rows: Int, width: Int, _ w: UnsafePointer<Float>, _ out: Int,
        into c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard rows > 0 else { return }
        BLAS.gemm(
            .none, .none, m: rows, n: out, k: width, alpha: 1, a: x, lda: lda, b: w, ldb: out, beta: 0, c: c, ldc: ldc)
    }

    /// dst[c] = src[c] over `n` values, 8 lanes at a time: rows here are 3–32 floats, where a
    /// `memmove` call per row costs more than the copy.
    @inline(__always) static func copy(_ src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, _ n: Int) {
        var c = 0
        let rs = UnsafeRawPointer(src), rd = UnsafeMutableRawPointer(dst)
        while c + 8 <= n {
            rd.storeBytes(
                of: rs.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self), toByteOffset: c * 4,
                as: SIMD8<Float>.self)
            c += 8
        }
        while c < n {
            dst[c] = src[c]
            c += 1
        }
    }

}

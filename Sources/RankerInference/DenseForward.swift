import CKernels
import Layers
import Linalg

/// Forward-only (inference) pass of a `RankerModel<Float>`'s dense network — DCN-v2 cross
/// layers (full rank or low-rank mixture) → MMoE (experts, softmax gates, towers) — with the
/// same maths as `CrossNetwork.forward` + `MMoE.forward` but none of their training caches:
///
/// - every intermediate lives in a `Workspace` reused across requests (no allocation, no page
///   faults once the largest request has been served);
/// - biases and activations are applied in one pass after each gemm (no bias broadcast before
///   it); the cross layer x_{l+1} = x_l + x0 ⊙ (x_l·W + b) is updated in place;
/// - columns of the input x0 that are the same in every row (a request's user and context
///   fields: one user, one time) are folded, in the first cross layer only, into a per-request
///   bias row: x0·W = x0[varying]·W[varying rows] + x0[0, constant]·W[constant rows], so the
///   first gemm's inner dimension is the number of varying columns. Equal to the unfolded
///   product up to float summation order.
///
/// Weights are read from the model's parameter store at every call (no copies to go stale).
/// Not thread-safe: one per scorer.
final class DenseForward {
    struct Dense {
        let weight: ParameterView, bias: ParameterView?
        let inputs: Int, outputs: Int
        let activation: Activation<Float>.Kind?
    }

    let model: RankerModel<Float>
    let width: Int, layers: Int
    let kind: CrossKind
    let crossW: [ParameterView], crossB: [ParameterView], crossV: [ParameterView], crossU: [ParameterView],
        crossG: [ParameterView]
    let experts: [[Dense]], gates: [Dense], towers: [[Dense]]
    /// Fold constant input columns into the first cross layer's bias (see the type's doc).
    var foldConstantColumns = true
    /// Columns folded in the last call (for tests and diagnostics).
    private(set) var lastConstantColumns = 0
    private let ws = Workspace()
    /// Floats held in the reusable buffers.
    var workspaceFloats: Int { ws.heldFloats }
    private var differBits: [UInt32] = []
    private var varying: [Int32] = [], constant: [Int32] = []

    init(_ model: RankerModel<Float>) {
        self.model = model
        let c = model.config, store = model.parameters
        width = c.inputWidth
        layers = c.crossLayers
        kind = c.crossKind
        func view(_ name: String) -> ParameterView {
            guard let v = store.view(named: name) else { preconditionFailure("DenseForward: no parameter \(name)") }
            return v
        }
        var w: [ParameterView] = [], b: [ParameterView] = [], v: [ParameterView] = [], u: [ParameterView] = []
        var g: [ParameterView] = []
        for l in 0..<layers {
            b.append(view("cross.\(l).bias"))
            switch kind {
            case .fullRank: w.append(view("cross.\(l).weight"))
            case .lowRank:
                v.append(view("cross.\(l).v"))
                u.append(view("cross.\(l).u"))
                g.append(view("cross.\(l).gate"))
            }
        }
        crossW = w
        crossB = b
        crossV = v
        crossU = u
        crossG = g
        func mlp(_ s: Sequential<Float>) -> [Dense] {
            var out: [Dense] = []
            for layer in s.layers {
                if let lin = layer as? Linear<Float> {
                    out.append(
                        Dense(
                            weight: lin.weight, bias: lin.bias, inputs: lin.inputs, outputs: lin.outputs,
                            activation: nil))
                } else if let act = layer as? Activation<Float> {
                    guard let last = out.popLast(), last.activation == nil else {
                        preconditionFailure("DenseForward: an activation that does not follow a linear layer")
                    }
                    out.append(
                        Dense(
                            weight: last.weight, bias: last.bias, inputs: last.inputs, outputs: last.outputs,
                            activation: act.kind))
                } else {
                    preconditionFailure("DenseForward: unsupported layer \(type(of: layer))")
                }
            }
            return out
        }
        experts = model.mmoe.experts.map(mlp)
        gates = model.mmoe.gates.map {
            Dense(weight: $0.weight, bias: $0.bias, inputs: $0.inputs, outputs: $0.outputs, activation: nil)
        }
        towers = model.mmoe.towers.map(mlp)
    }

    // Workspace slots.
    private enum Slot: Int {
        case f, xl, varyingInput, varyingWeight, rowBias, proj, gateLogits, expertU, mmoeGate, mmoeMix, pingA, pingB
        case expertOut  // + expert index
    }

    /// Per-task logits (tasks × n) of the inputs x0 (n, width), row-major; x0 is not changed.
    func logits(_ x0: UnsafePointer<Float>, rows n: Int) -> [[Float]] {
        let d = width
        let xl = ws.floats(Slot.xl.rawValue, n * d)
        // Full rank writes x_1 from x0 directly; the low-rank layer adds to x_l in place.
        if layers == 0 || kind != .fullRank { xl.update(from: x0, count: n * d) }
        findConstantColumns(x0, rows: n)
        for l in 0..<layers {
            switch kind {
            case .fullRank: fullRankLayer(l, x0, xl, n)
            case .lowRank(let rank, let e): lowRankLayer(l, x0, xl, n, rank: rank, experts: e)
            }
        }
        // Dropout is the identity at inference.
        return mmoe(xl, n)
    }

    /// Splits x0's columns into varying and constant ones (constant: the same bits as row 0's
    /// in every row).
    private func findConstantColumns(_ x0: UnsafePointer<Float>, rows n: Int) {
        let d = width
        varying.removeAll(keepingCapacity: true)
        constant.removeAll(keepingCapacity: true)
        guard foldConstantColumns, n > 1 else {
            for c in 0..<d { varying.append(Int32(c)) }
            lastConstantColumns = 0
            return
        }
        // differs[c] != 0 when column c's bits differ from row 0's somewhere (an OR of XORs:
        // branch-free, vectorised).
        if differBits.count < d { differBits = [UInt32](repeating: 0, count: d) }
        differBits.withUnsafeMutableBufferPointer { dp in
            let differs = dp.baseAddress!
            differs.update(repeating: 0, count: d)
            for i in 1..<n {
                let row = x0 + i * d
                for c in 0..<d { differs[c] |= row[c].bitPattern ^ x0[c].bitPattern }
            }
        }
        let differs = differBits
        for c in 0..<d { if differs[c] != 0 { varying.append(Int32(c)) } else { constant.append(Int32(c)) } }
        lastConstantColumns = constant.count
    }

    /// out (n, cols), leading dimension `ldo` = x0·M with M (width, cols) row-major, without
    /// bias: the varying columns by gemm; returns the row to add to every output row (the
    /// constant columns' part, plus `bias` when given), `cols` floats in the rowBias slot.
    private func inputProduct(
        _ x0: UnsafePointer<Float>, n: Int, _ m: UnsafePointer<Float>, cols: Int, bias: UnsafePointer<Float>?,
        into out: UnsafeMutablePointer<Float>, ldo: Int
    ) -> UnsafeMutablePointer<Float> {
        let d = width, dv = varying.count
        let rowBias = ws.floats(Slot.rowBias.rawValue, cols)
        if let bias { rowBias.update(from: bias, count: cols) } else { rowBias.update(repeating: 0, count: cols) }
        for c in constant {
            let a = x0[Int(c)]
            if a == 0 { continue }
            let mr = m + Int(c) * cols
            for j in 0..<cols { rowBias[j] += a * mr[j] }
        }
        if dv == d {
            BLAS.gemm(
                .none, .none, m: n, n: cols, k: d, alpha: 1, a: x0, lda: d, b: m, ldb: cols, beta: 0, c: out, ldc: ldo)
        } else if dv > 0 {
            // Gather x0's varying columns (n, dv) and M's varying rows (dv, cols).
            let xv = ws.floats(Slot.varyingInput.rawValue, n * dv)
            let mv = ws.floats(Slot.varyingWeight.rawValue, dv * cols)
            varying.withUnsafeBufferPointer { vp in
                for i in 0..<n {
                    let src = x0 + i * d, dst = xv + i * dv
                    for q in 0..<dv { dst[q] = src[Int(vp[q])] }
                }
                for q in 0..<dv { (mv + q * cols).update(from: m + Int(vp[q]) * cols, count: cols) }
            }
            BLAS.gemm(
                .none, .none, m: n, n: cols, k: dv, alpha: 1, a: xv, lda: dv, b: mv, ldb: cols, beta: 0, c: out,
                ldc: ldo)
        } else {
            for i in 0..<n { (out + i * ldo).update(repeating: 0, count: cols) }
        }
        return rowBias
    }

    /// x_l ← x_l + x0 ⊙ (x_l·W + b), in place.
    private func fullRankLayer(_ l: Int, _ x0: UnsafePointer<Float>, _ xl: UnsafeMutablePointer<Float>, _ n: Int) {
        let d = width, store = model.parameters
        let f = ws.floats(Slot.f.rawValue, n * d)
        let w = store.value(crossW[l]), b = store.value(crossB[l])
        let rowBias: UnsafePointer<Float>
        if l == 0 {
            // x_0 = x0: fold the constant columns.
            rowBias = UnsafePointer(inputProduct(x0, n: n, w, cols: d, bias: b, into: f, ldo: d))
        } else {
            BLAS.gemm(.none, .none, m: n, n: d, k: d, alpha: 1, a: xl, lda: d, b: w, ldb: d, beta: 0, c: f, ldc: d)
            rowBias = UnsafePointer(b)
        }
        for i in 0..<n {
            let o = i * d
            // x_l + x0 ⊙ (f + b), with x_0 = x0 read from the input at the first layer.
            Self.crossUpdate(xl + o, l == 0 ? x0 + o : UnsafePointer(xl + o), x0 + o, f + o, rowBias, d)
        }
    }

    /// y[c] = x[c] + x0[c]·(f[c] + b[c]) over d values (x may be y).
    @inline(__always)
    static func crossUpdate(
        _ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ x0: UnsafePointer<Float>,
        _ f: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: Int
    ) {
        var c = 0
        let ry = UnsafeMutableRawPointer(y), rl = UnsafeRawPointer(x), rx = UnsafeRawPointer(x0),
            rf = UnsafeRawPointer(f), rb = UnsafeRawPointer(b)
        while c + 8 <= d {
            let o = c * 4
            let v =
                rl.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                + rx.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                * (rf.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                    + rb.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self))
            ry.storeBytes(of: v, toByteOffset: o, as: SIMD8<Float>.self)
            c += 8
        }
        while c < d {
            y[c] = x[c] + x0[c] * (f[c] + b[c])
            c += 1
        }
    }

    /// Low-rank mixture layer: x_l ← x_l + Σ_e g_e(x_l) · x0 ⊙ (x_l·V_e·U_e + b_e).
    private func lowRankLayer(
        _ l: Int, _ x0: UnsafePointer<Float>, _ xl: UnsafeMutablePointer<Float>, _ n: Int, rank: Int, experts: Int
    ) {
        let d = width, store = model.parameters, er = experts * rank
        let proj = ws.floats(Slot.proj.rawValue, n * er)
        let logits = ws.floats(Slot.gateLogits.rawValue, n * experts)
        let v = store.value(crossV[l]), g = store.value(crossG[l])
        if l == 0 {
            for (m, cols, out) in [(v, er, proj), (g, experts, logits)] {
                let rb = inputProduct(x0, n: n, m, cols: cols, bias: nil, into: out, ldo: cols)
                for i in 0..<n { for j in 0..<cols { out[i * cols + j] += rb[j] } }
            }
        } else {
            BLAS.gemm(
                .none, .none, m: n, n: er, k: d, alpha: 1, a: xl, lda: d, b: v, ldb: er, beta: 0, c: proj, ldc: er)
            BLAS.gemm(
                .none, .none, m: n, n: experts, k: d, alpha: 1, a: xl, lda: d, b: g, ldb: experts, beta: 0, c: logits,
                ldc: experts)
        }
        Self.softmaxRows(logits, rows: n, cols: experts)
        let u = store.value(crossU[l]), bias = store.value(crossB[l])
        let ue = ws.floats(Slot.expertU.rawValue, n * d)
        // All experts' contributions are summed before adding to x_l (x_l is the gemm input).
        let acc = ws.floats(Slot.f.rawValue, n * d)
        acc.update(repeating: 0, count: n * d)
        for e in 0..<experts {
            BLAS.gemm(
                .none, .none, m: n, n: d, k: rank, alpha: 1, a: proj + e * rank, lda: er, b: u + e * rank * d, ldb: d,
                beta: 0, c: ue, ldc: d)
            let be = bias + e * d
            for r in 0..<n {
                let ge = logits[r * experts + e]
                let o = r * d
                for c in 0..<d { acc[o + c] += ge * x0[o + c] * (ue[o + c] + be[c]) }
            }
        }
        for i in 0..<n * d { xl[i] += acc[i] }
    }

    /// Row-wise softmax in place (max-subtracted, like `softmaxRows` in Learning; CKernels'
    /// vectorised exp).
    static func softmaxRows(_ z: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        mosaic_softmax_rows(z, rows, cols, cols)
    }

    /// MMoE over h (n, width): per task k, tower_k(Σ_e softmax(h·G_k + c_k)_e · expert_e(h)).
    private func mmoe(_ h: UnsafeMutablePointer<Float>, _ n: Int) -> [[Float]] {
        let ec = experts.count
        var outs: [UnsafeMutablePointer<Float>] = []
        var m = 0
        for (e, mlp) in experts.enumerated() {
            let (p, w) = run(mlp, h, n, final: Slot.expertOut.rawValue + e)
            outs.append(p)
            m = w
        }
        var result: [[Float]] = []
        for (k, gate) in gates.enumerated() {
            let g = ws.floats(Slot.mmoeGate.rawValue, n * ec)
            apply(gate, h, n, into: g)
            Self.softmaxRows(g, rows: n, cols: ec)
            let mix = ws.floats(Slot.mmoeMix.rawValue, n * m)
            for r in 0..<n {
                let o = mix + r * m
                let w0 = g[r * ec]
                let src0 = outs[0] + r * m
                for c in 0..<m { o[c] = w0 * src0[c] }
                for e in 1..<max(1, ec) {
                    let w = g[r * ec + e], src = outs[e] + r * m
                    for c in 0..<m { o[c] += w * src[c] }
                }
            }
            let (p, w) = run(towers[k], mix, n, final: nil)
            precondition(w == 1, "DenseForward: tower \(k) has \(w) outputs, expected 1")
            result.append(Array(UnsafeBufferPointer(start: p, count: n)))
        }
        return result
    }

    /// Runs an MLP on x (n, inputs); the last layer's output goes to slot `final` (or a
    /// ping-pong slot). Returns it and its width.
    private func run(_ mlp: [Dense], _ x: UnsafePointer<Float>, _ n: Int, final: Int?) -> (
        UnsafeMutablePointer<Float>, Int
    ) {
        var input = x
        var out = UnsafeMutablePointer(mutating: x)
        for (i, layer) in mlp.enumerated() {
            let slot = i == mlp.count - 1 && final != nil ? final! : (i % 2 == 0 ? Slot.pingA : Slot.pingB).rawValue
            out = ws.floats(slot, n * layer.outputs)
            apply(layer, input, n, into: out)
            input = UnsafePointer(out)
        }
        return (out, mlp.last?.outputs ?? 0)
    }

    /// y (n, outputs) = act(x·W + b).
    private func apply(_ layer: Dense, _ x: UnsafePointer<Float>, _ n: Int, into y: UnsafeMutablePointer<Float>) {
        let store = model.parameters, o = layer.outputs
        BLAS.gemm(
            .none, .none, m: n, n: o, k: layer.inputs, alpha: 1, a: x, lda: layer.inputs, b: store.value(layer.weight),
            ldb: o, beta: 0, c: y, ldc: o)
        let b = layer.bias.map { UnsafePointer(store.value($0)) }
        switch layer.activation {
        case nil:
            if let b { for r in 0..<n { let row = y + r * o; for c in 0..<o { row[c] += b[c] } } }
        case .relu:
            if let b {
                for r in 0..<n { let row = y + r * o; for c in 0..<o { row[c] = Swift.max(row[c] + b[c], 0) } }
            } else {
                for i in 0..<n * o { y[i] = Swift.max(y[i], 0) }
            }
        case .sigmoid:
            for r in 0..<n {
                let row = y + r * o
                for c in 0..<o { row[c] = Float.sigmoid(row[c] + (b?[c] ?? 0)) }
            }
        case .gelu:
            let k: Float = 0.7978845608028654
            for r in 0..<n {
                let row = y + r * o
                for c in 0..<o {
                    let v = row[c] + (b?[c] ?? 0)
                    row[c] = 0.5 * v * (1 + Float.tanh(k * (v + 0.044715 * v * v * v)))
                }
            }
        }
    }
}

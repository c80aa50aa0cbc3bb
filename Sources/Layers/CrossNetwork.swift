/// DCN-v2 cross network (Wang et al. 2021): x_{l+1} = x0 ⊙ f_l(x_l) + x_l over `layers` layers,
/// all of width d.
///
/// - Full rank: f(x) = x·W + b, W (d, d).
/// - Low-rank mixture of experts: f(x) = Σ_i g_i(x) · (x·V_i·U_i + b_i) with V_i (d, r),
///   U_i (r, d), and gates g(x) = softmax(x·G), G (d, E). (The ⊙ x0 is applied per expert,
///   which is the same as applying it to the mixture.)
///
/// Cost per layer: 2·B·d² flops full rank, 4·B·d·r·E low rank.
public final class CrossNetwork<T: Real>: Layer {
    public typealias Kind = CrossKind
    public let width: Int, layers: Int
    public let kind: Kind
    public let store: ParameterStore<T>
    private var w: [ParameterView] = [], b: [ParameterView] = []
    private var v: [ParameterView] = [], u: [ParameterView] = [], g: [ParameterView] = []
    // Caches per layer: inputs x_l, f_l outputs (full) or per-expert u (low rank), gates, V-projections.
    private var x0 = Tensor<T>.zeros(0, 0)
    private var xs: [Tensor<T>] = []
    private var fs: [[T]] = []
    private var gates: [[T]] = []
    private var projections: [[T]] = []

    public init(_ store: ParameterStore<T>, name: String, width d: Int, layers: Int, kind: Kind = .fullRank) {
        self.store = store
        width = d
        self.layers = layers
        self.kind = kind
        for l in 0..<layers {
            switch kind {
            case .fullRank:
                w.append(store.add("\(name).\(l).weight", shape: [d, d], .glorot(fanIn: d, fanOut: d)))
                b.append(store.add("\(name).\(l).bias", shape: [d], .zeros))
            case .lowRank(let r, let e):
                v.append(store.add("\(name).\(l).v", shape: [d, e * r], .glorot(fanIn: d, fanOut: r)))
                u.append(store.add("\(name).\(l).u", shape: [e, r, d], .glorot(fanIn: r, fanOut: d)))
                b.append(store.add("\(name).\(l).bias", shape: [e, d], .zeros))
                g.append(store.add("\(name).\(l).gate", shape: [d, e], .glorot(fanIn: d, fanOut: e)))
            }
        }
    }

    @_specialize(where T == Float)
    public func forward(_ x: Tensor<T>) -> Tensor<T> {
        precondition(x.cols == width, "CrossNetwork: width \(x.cols), expected \(width)")
        x0 = x
        xs = []; fs = []; gates = []; projections = []
        var xl = x
        for l in 0..<layers {
            xs.append(xl)
            xl = layerForward(l, xl)
        }
        return xl
    }

    @_specialize(where T == Float)
    private func layerForward(_ l: Int, _ xl: Tensor<T>) -> Tensor<T> {
        let n = xl.rows, d = width
        var y = xl
        switch kind {
        case .fullRank:
            var f = [T].uninitialized(n * d)
            let bias = store.value(b[l])
            for r in 0..<n { for c in 0..<d { f[r * d + c] = bias[c] } }
            xl.data.withUnsafeBufferPointer { xp in
                f.withUnsafeMutableBufferPointer { fp in
                    matmul(
                        false, false, m: n, n: d, k: d, xp.baseAddress!, d, store.value(w[l]), d, beta: 1,
                        fp.baseAddress!, d)
                }
            }
            let x0d = x0.data
            y.data.withUnsafeMutableBufferPointer { yp in
                x0d.withUnsafeBufferPointer { xp in
                    f.withUnsafeBufferPointer { fp in
                        for i in 0..<n * d { yp[i] += xp[i] * fp[i] }
                    }
                }
            }
            fs.append(f)
        case .lowRank(let rank, let experts):
            // proj = x·V (n, E·r); u_i = proj_i·U_i + b_i (n, d) stored as (E, n, d).
            var proj = [T](repeating: 0, count: n * experts * rank)
            var us = [T](repeating: 0, count: experts * n * d)
            var logits = [T](repeating: 0, count: n * experts)
            xl.data.withUnsafeBufferPointer { xp in
                proj.withUnsafeMutableBufferPointer { pp in
                    matmul(
                        false, false, m: n, n: experts * rank, k: d, xp.baseAddress!, d, store.value(v[l]),
                        experts * rank,
                        pp.baseAddress!, experts * rank)
                }
                logits.withUnsafeMutableBufferPointer { lp in
                    matmul(
                        false, false, m: n, n: experts, k: d, xp.baseAddress!, d, store.value(g[l]), experts,
                        lp.baseAddress!, experts)
                }
            }
            let bias = store.value(b[l]), uw = store.value(u[l])
            us.withUnsafeMutableBufferPointer { up in
                proj.withUnsafeBufferPointer { pp in
                    for e in 0..<experts {
                        let out = up.baseAddress! + e * n * d
                        for r in 0..<n { (out + r * d).update(from: bias + e * d, count: d) }
                        matmul(
                            false, false, m: n, n: d, k: rank, pp.baseAddress! + e * rank, experts * rank,
                            uw + e * rank * d, d, beta: 1, out, d)
                    }
                }
            }
            softmaxRows(&logits, rows: n, cols: experts)
            for e in 0..<experts {
                for r in 0..<n {
                    let ge = logits[r * experts + e]
                    for c in 0..<d { y.data[r * d + c] += ge * x0.data[r * d + c] * us[(e * n + r) * d + c] }
                }
            }
            projections.append(proj)
            fs.append(us)
            gates.append(logits)
        }
        return y
    }

    @_specialize(where T == Float)
    public func backward(_ dy: Tensor<T>) -> Tensor<T> { backward(dy, afterLayer: { _ in }) }

    /// `backward(_:)`, calling `afterLayer(l)` as soon as layer l's parameter gradients are final
    /// (layers in reverse order), e.g. so that a data-parallel trainer can start sending them.
    @_specialize(where T == Float)
    public func backward(_ dy: Tensor<T>, afterLayer: (Int) -> Void) -> Tensor<T> {
        let n = dy.rows, d = width
        var dx0 = [T](repeating: 0, count: n * d)
        var g0 = dy  // dL/dx_{l+1}
        for l in (0..<layers).reversed() {
            let xl = xs[l]
            var dxl = g0.data  // the residual path
            switch kind {
            case .fullRank:
                let f = fs[l]
                var df = [T].uninitialized(n * d)
                let x0d = x0.data, gd = g0.data
                df.withUnsafeMutableBufferPointer { dfp in
                    dx0.withUnsafeMutableBufferPointer { dxp in
                        x0d.withUnsafeBufferPointer { xp in
                            gd.withUnsafeBufferPointer { gp in
                                f.withUnsafeBufferPointer { fp in
                                    for i in 0..<n * d {
                                        dfp[i] = gp[i] * xp[i]
                                        dxp[i] += gp[i] * fp[i]
                                    }
                                }
                            }
                        }
                    }
                }
                let db = store.grad(b[l])
                for r in 0..<n { for c in 0..<d { db[c] += df[r * d + c] } }
                xl.data.withUnsafeBufferPointer { xp in
                    df.withUnsafeBufferPointer { dp in
                        matmul(
                            true, false, m: d, n: d, k: n, xp.baseAddress!, d, dp.baseAddress!, d, beta: 1,
                            store.grad(w[l]), d)
                        dxl.withUnsafeMutableBufferPointer { op in
                            matmul(
                                false, true, m: n, n: d, k: d, dp.baseAddress!, d, store.value(w[l]), d, beta: 1,
                                op.baseAddress!, d)
                        }
                    }
                }
            case .lowRank(let rank, let experts):
                let us = fs[l], gate = gates[l], proj = projections[l]
                var dgate = [T](repeating: 0, count: n * experts)
                var dproj = [T](repeating: 0, count: n * experts * rank)
                let db = store.grad(b[l]), du = store.grad(u[l]), uw = store.value(u[l])
                for e in 0..<experts {
                    // du_e = g_e · dy ⊙ x0 (n, d)
                    var due = [T](repeating: 0, count: n * d)
                    for r in 0..<n {
                        let ge = gate[r * experts + e]
                        var dot: T = 0
                        for c in 0..<d {
                            let i = r * d + c
                            let ue = us[(e * n + r) * d + c]
                            dot += g0.data[i] * x0.data[i] * ue
                            dx0[i] += g0.data[i] * ge * ue
                            due[i] = ge * g0.data[i] * x0.data[i]
                            db[e * d + c] += due[i]
                        }
                        dgate[r * experts + e] = dot
                    }
                    due.withUnsafeBufferPointer { dp in
                        proj.withUnsafeBufferPointer { pp in
                            // dU_e += proj_eᵀ·du_e (r, d)
                            matmul(
                                true, false, m: rank, n: d, k: n, pp.baseAddress! + e * rank, experts * rank,
                                dp.baseAddress!, d,
                                beta: 1, du + e * rank * d, d)
                        }
                        dproj.withUnsafeMutableBufferPointer { dpp in
                            // dproj_e = du_e·U_eᵀ (n, r)
                            matmul(
                                false, true, m: n, n: rank, k: d, dp.baseAddress!, d, uw + e * rank * d, d,
                                dpp.baseAddress! + e * rank, experts * rank)
                        }
                    }
                }
                // Softmax backward: dz = g ⊙ (dg − Σ g·dg).
                var dz = [T](repeating: 0, count: n * experts)
                for r in 0..<n {
                    var s: T = 0
                    for e in 0..<experts { s += gate[r * experts + e] * dgate[r * experts + e] }
                    for e in 0..<experts { dz[r * experts + e] = gate[r * experts + e] * (dgate[r * experts + e] - s) }
                }
                xl.data.withUnsafeBufferPointer { xp in
                    dproj.withUnsafeBufferPointer { dpp in
                        matmul(
                            true, false, m: d, n: experts * rank, k: n, xp.baseAddress!, d, dpp.baseAddress!,
                            experts * rank,
                            beta: 1, store.grad(v[l]), experts * rank)
                        dxl.withUnsafeMutableBufferPointer { op in
                            matmul(
                                false, true, m: n, n: d, k: experts * rank, dpp.baseAddress!, experts * rank,
                                store.value(v[l]),
                                experts * rank, beta: 1, op.baseAddress!, d)
                        }
                    }
                    dz.withUnsafeBufferPointer { zp in
                        matmul(
                            true, false, m: d, n: experts, k: n, xp.baseAddress!, d, zp.baseAddress!, experts,
                            beta: 1, store.grad(g[l]), experts)
                        dxl.withUnsafeMutableBufferPointer { op in
                            matmul(
                                false, true, m: n, n: d, k: experts, zp.baseAddress!, experts, store.value(g[l]),
                                experts,
                                beta: 1, op.baseAddress!, d)
                        }
                    }
                }
            }
            g0 = Tensor(rows: n, cols: d, data: dxl)
            afterLayer(l)
        }
        // x0 is also x_0: the first layer's input gradient adds to the ⊙ x0 paths.
        for i in 0..<n * d { g0.data[i] += dx0[i] }
        return g0
    }
}

/// Row-wise softmax in place over a (rows, cols) buffer (max-subtracted).
@_specialize(where T == Float)
func softmaxRows<T: Real>(_ z: inout [T], rows: Int, cols: Int) {
    for r in 0..<rows {
        var m = -T.infinity
        for c in 0..<cols { m = Swift.max(m, z[r * cols + c]) }
        var s: T = 0
        for c in 0..<cols {
            let e = T.exp(z[r * cols + c] - m)
            z[r * cols + c] = e
            s += e
        }
        for c in 0..<cols { z[r * cols + c] /= s }
    }
}

/// Full-rank or low-rank mixture-of-experts DCN-v2 cross layers.
public enum CrossKind: Sendable, Equatable {
    case fullRank
    /// Each of `experts` experts is U·V of rank `rank`.
    case lowRank(rank: Int, experts: Int)
}

import Foundation

/// Update rules. Dense parameters use `update(values:grads:lr:)` on the whole buffer; embedding
/// tables use `updateRows`, which reads and writes only the rows a batch touched ("lazy"
/// sparse variants: untouched rows keep their value and state).
public enum OptimizerKind: Sendable, Equatable {
    /// v ← μ·v + g; θ ← θ − lr·v (μ = 0 is plain SGD).
    case sgd(momentum: Double)
    /// Adam (Kingma & Ba) with bias correction; `weightDecay` > 0 is AdamW's decoupled decay
    /// θ ← θ − lr·λ·θ.
    case adam(beta1: Double, beta2: Double, epsilon: Double, weightDecay: Double)
    /// Adagrad: s ← s + g²; θ ← θ − lr·g/(sqrt(s) + ε).
    case adagrad(epsilon: Double, initialAccumulator: Double)

    public static let adam = OptimizerKind.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0)

    /// Number of state slots per parameter (momentum / moments / accumulator).
    public var stateSlots: Int {
        switch self {
        case .sgd(let m): m == 0 ? 0 : 1
        case .adam: 2
        case .adagrad: 1
        }
    }

    /// A short name for logs and checkpoints.
    public var name: String {
        switch self {
        case .sgd: "sgd"
        case .adam(_, _, _, let wd): wd > 0 ? "adamw" : "adam"
        case .adagrad: "adagrad"
        }
    }
}

/// An optimizer and its state for `count` parameters (`stateSlots` × count scalars).
///
/// State is kept in the parameters' scalar type; `t` counts the dense steps taken (used for
/// Adam's bias correction; sparse row updates use the caller's global step so a row touched
/// rarely is still corrected by the true step).
public final class Optimizer<T: Real> {
    public let kind: OptimizerKind
    public let count: Int
    /// State slot s of parameter i is `state[s][i]`.
    public var state: [[T]]
    /// Dense steps taken; for sparse row updates, the last global step.
    public var t: Int = 0

    public init(_ kind: OptimizerKind, count: Int) {
        self.kind = kind
        self.count = count
        var initial: T = 0
        if case .adagrad(_, let a) = kind { initial = T(a) }
        state = (0..<kind.stateSlots).map { _ in [T](repeating: initial, count: count) }
    }

    /// One step on the whole buffer: θ ← update(θ, g) at learning rate `lr`.
    @_specialize(where T == Float)
    public func update(values: UnsafeMutableBufferPointer<T>, grads: UnsafeMutableBufferPointer<T>, lr: Double) {
        precondition(values.count == count && grads.count == count, "Optimizer: buffer sizes differ from \(count)")
        t += 1
        let step = t
        let c = coefficients(lr: lr, step: step)
        withState { m, s in
            apply(values.baseAddress!, UnsafePointer(grads.baseAddress!), n: count, m, s, c)
        }
    }

    /// One step on the parts of a buffer this optimizer owns (the sharded dense update): the
    /// state covers `ranges` of `values` back to back (`count` = their total length), and
    /// `grads` holds their gradients back to back in the same order.
    @_specialize(where T == Float)
    public func update(
        values: UnsafeMutableBufferPointer<T>, ranges: [Range<Int>], grads: UnsafePointer<T>, lr: Double
    ) {
        precondition(
            ranges.reduce(0) { $0 + $1.count } == count, "Optimizer: owned ranges do not cover \(count) values")
        t += 1
        let c = coefficients(lr: lr, step: t)
        withState { m, s in
            var offset = 0
            for range in ranges {
                apply(
                    values.baseAddress! + range.lowerBound, grads + offset, n: range.count, m.map { $0 + offset },
                    s.map { $0 + offset }, c)
                offset += range.count
            }
        }
    }

    /// One part of a step: `count` values at `values` with gradients `grads`, whose state is at
    /// `stateOffset` of this optimizer's state, at the explicit step number `step` (≥ 1). Does not
    /// advance `t` (the caller sets it once per step), so a sharded update can run bucket by
    /// bucket as each bucket's gradients arrive; the parts of one step together equal one
    /// `update(values:ranges:grads:lr:)`.
    @_specialize(where T == Float)
    public func update(
        values: UnsafeMutablePointer<T>, grads: UnsafePointer<T>, count n: Int, stateOffset: Int, lr: Double, step: Int
    ) {
        precondition(stateOffset >= 0 && stateOffset + n <= count, "Optimizer: part outside the state of \(count)")
        let c = coefficients(lr: lr, step: step)
        withState { m, s in apply(values, grads, n: n, m.map { $0 + stateOffset }, s.map { $0 + stateOffset }, c) }
    }

    /// Sparse step for an embedding table (`rows × dim` values, this optimizer built with
    /// `count == rows·dim`): updates only `gradient.rows`, at global step `step` (≥ 1).
    @_specialize(where T == Float)
    public func updateRows(table: inout [T], gradient: SparseRows<T>, lr: Double, step: Int) {
        precondition(table.count == count, "Optimizer: table of \(table.count) values, state for \(count)")
        updateRows(table: &table, gradient: gradient, lr: lr, step: step, stateRow: { Int($0) })
    }

    /// Sparse step where this optimizer holds the state of a subset of the table's rows:
    /// `stateRow(row)` is the row of `row`'s state (e.g. `row / ranks` for rows owned by one
    /// rank in `RowShardLayout`); `count` = state rows × dim.
    @_specialize(where T == Float)
    public func updateRows(
        table: inout [T], gradient: SparseRows<T>, lr: Double, step: Int, stateRow: (Int64) -> Int
    ) {
        t = step
        let dim = gradient.dim
        let c = coefficients(lr: lr, step: step)  // once per call, not per row
        table.withUnsafeMutableBufferPointer { v in
            gradient.grads.withUnsafeBufferPointer { g in
                withState { m, s in
                    for (i, row) in gradient.rows.enumerated() {
                        let start = Int(row) * dim
                        let state = stateRow(row) * dim
                        precondition(
                            start + dim <= v.count && state + dim <= count,
                            "Optimizer: row \(row) outside the table or this optimizer's state")
                        apply(
                            v.baseAddress! + start, g.baseAddress! + i * dim, n: dim, m.map { $0 + state },
                            s.map { $0 + state }, c)
                    }
                }
            }
        }
    }

    /// Runs `body` with pointers to state slots 0 and 1 (nil when the kind has fewer).
    private func withState(_ body: (UnsafeMutablePointer<T>?, UnsafeMutablePointer<T>?) -> Void) {
        var slots = state
        state = []  // keep the slots uniquely referenced while they are written through pointers
        defer { state = slots }
        switch slots.count {
        case 0: body(nil, nil)
        case 1: slots[0].withUnsafeMutableBufferPointer { body($0.baseAddress!, nil) }
        default:
            var first = slots[0], second = slots[1]
            slots = []
            first.withUnsafeMutableBufferPointer { m in
                second.withUnsafeMutableBufferPointer { s in body(m.baseAddress!, s.baseAddress!) }
            }
            slots = [first, second]
        }
    }

    /// Per-step constants of the update rule (bias corrections computed once per step).
    private struct Coefficients {
        var rate: T, mu: T = 0, b1: T = 0, b2: T = 0, eps: T = 0, root2: T = 1, decay: T = 1
    }

    private func coefficients(lr: Double, step: Int) -> Coefficients {
        switch kind {
        case .sgd(let momentum): return Coefficients(rate: T(lr), mu: T(momentum))
        case .adam(let beta1, let beta2, let epsilon, let weightDecay):
            let c1 = 1 - pow(beta1, Double(step)), c2 = 1 - pow(beta2, Double(step))
            return Coefficients(
                rate: T(lr / c1), b1: T(beta1), b2: T(beta2), eps: T(epsilon), root2: T(1 / c2.squareRoot()),
                decay: T(1 - lr * weightDecay))
        case .adagrad(let epsilon, _): return Coefficients(rate: T(lr), eps: T(epsilon))
        }
    }

    /// Updates n values `v` from gradients `g` with state slots `m`, `s` (same offsets).
    @_specialize(where T == Float)
    @inline(__always)
    private func apply(
        _ v: UnsafeMutablePointer<T>, _ g: UnsafePointer<T>, n: Int, _ m: UnsafeMutablePointer<T>?,
        _ s: UnsafeMutablePointer<T>?, _ c: Coefficients
    ) {
        switch kind {
        case .sgd:
            let rate = c.rate
            if let m {
                let mu = c.mu
                for i in 0..<n {
                    m[i] = mu * m[i] + g[i]
                    v[i] -= rate * m[i]
                }
            } else {
                for i in 0..<n { v[i] -= rate * g[i] }
            }
        case .adam:
            Kernels.adam(v, g, m!, s!, n, b1: c.b1, b2: c.b2, rate: c.rate, root2: c.root2, eps: c.eps, decay: c.decay)
        case .adagrad:
            let a = m!
            let rate = c.rate, eps = c.eps
            for i in 0..<n {
                a[i] += g[i] * g[i]
                v[i] -= rate * g[i] / (a[i].squareRoot() + eps)
            }
        }
    }
}

/// Multi-gate mixture of experts (Ma et al. 2018): E shared expert networks, and per task k a
/// softmax gate g_k(x) = softmax(x·G_k + c_k) over experts and a tower on
/// h_k = Σ_e g_{k,e}·expert_e(x). Input x is (B, d); output is one (B, towerOut) tensor per task.
public final class MMoE<T: Real> {
    public let experts: [Sequential<T>]
    public let gates: [Linear<T>]
    public let towers: [Sequential<T>]
    public let expertWidth: Int
    private var expertOutputs: [Tensor<T>] = []
    private var gateValues: [[T]] = []

    /// - experts: `count` MLPs of widths `[inputs] + expertWidths` (ReLU after every layer).
    /// - towers: one MLP per task of widths `[expertWidths.last] + towerWidths` (ReLU between
    ///   layers, none after the last, whose output is the task's logit(s)).
    public init(
        _ store: ParameterStore<T>, name: String, inputs: Int, expertCount: Int, expertWidths: [Int], tasks: Int,
        towerWidths: [Int]
    ) {
        precondition(
            !expertWidths.isEmpty && !towerWidths.isEmpty && expertCount > 0 && tasks > 0, "MMoE: empty configuration")
        expertWidth = expertWidths.last!
        experts = (0..<expertCount).map { .mlp(store, name: "\(name).expert\($0)", widths: [inputs] + expertWidths) }
        gates = (0..<tasks).map { Linear(store, name: "\(name).gate\($0)", inputs: inputs, outputs: expertCount) }
        towers = (0..<tasks).map {
            .mlp(store, name: "\(name).tower\($0)", widths: [expertWidths.last!] + towerWidths, finalActivation: false)
        }
    }

    /// Per-task outputs from x (B, inputs).
    @_specialize(where T == Float)
    public func forward(_ x: Tensor<T>) -> [Tensor<T>] {
        let n = x.rows, m = expertWidth, ec = experts.count
        expertOutputs = experts.map { $0.forward(x) }
        gateValues = []
        var outs: [Tensor<T>] = []
        for (k, gate) in gates.enumerated() {
            var g = gate.forward(x).data
            softmaxRows(&g, rows: n, cols: ec)
            gateValues.append(g)
            var h = [T](repeating: 0, count: n * m)
            h.withUnsafeMutableBufferPointer { hp in
                for e in 0..<ec {
                    expertOutputs[e].data.withUnsafeBufferPointer { o in
                        for r in 0..<n {
                            let w = g[r * ec + e]
                            for c in 0..<m { hp[r * m + c] += w * o[r * m + c] }
                        }
                    }
                }
            }
            outs.append(towers[k].forward(Tensor(rows: n, cols: m, data: h)))
        }
        return outs
    }

    /// Gate weights of the last forward for task k, (B, E).
    public func gateWeights(task k: Int) -> [T] { gateValues[k] }

    /// dL/dx from per-task dL/doutput.
    @_specialize(where T == Float)
    public func backward(_ dOuts: [Tensor<T>]) -> Tensor<T> { backward(dOuts, progress: { _ in }) }

    /// Parts of an MMoE whose parameter gradients become final during `backward`, in order.
    public enum BackwardPart: Sendable, Equatable {
        /// Every tower and gate.
        case towersAndGates
        /// Expert e.
        case expert(Int)
    }

    /// `backward(_:)`, calling `progress(part)` as soon as a part's parameter gradients are final
    /// (e.g. so that a data-parallel trainer can start sending them).
    @_specialize(where T == Float)
    public func backward(_ dOuts: [Tensor<T>], progress: (BackwardPart) -> Void) -> Tensor<T> {
        precondition(dOuts.count == towers.count, "MMoE: \(dOuts.count) task gradients for \(towers.count) tasks")
        let n = dOuts[0].rows, m = expertWidth, ec = experts.count
        var dExpert = (0..<ec).map { _ in [T](repeating: 0, count: n * m) }
        var dx: Tensor<T>? = nil
        for k in 0..<towers.count {
            let dh = towers[k].backward(dOuts[k]).data
            let g = gateValues[k]
            var dz = [T](repeating: 0, count: n * ec)
            for e in 0..<ec {
                dExpert[e].withUnsafeMutableBufferPointer { de in
                    expertOutputs[e].data.withUnsafeBufferPointer { o in
                        dh.withUnsafeBufferPointer { dhp in
                            for r in 0..<n {
                                let w = g[r * ec + e]
                                var dot: T = 0
                                for c in 0..<m {
                                    de[r * m + c] += w * dhp[r * m + c]
                                    dot += dhp[r * m + c] * o[r * m + c]
                                }
                                dz[r * ec + e] = dot
                            }
                        }
                    }
                }
            }
            for r in 0..<n {
                var s: T = 0
                for e in 0..<ec { s += g[r * ec + e] * dz[r * ec + e] }
                for e in 0..<ec { dz[r * ec + e] = g[r * ec + e] * (dz[r * ec + e] - s) }
            }
            let dxGate = gates[k].backward(Tensor(rows: n, cols: ec, data: dz))
            if dx == nil { dx = dxGate } else { dx!.add(dxGate) }
        }
        progress(.towersAndGates)
        for e in 0..<ec {
            dx!.add(experts[e].backward(Tensor(rows: n, cols: m, data: dExpert[e])))
            progress(.expert(e))
        }
        return dx!
    }
}

import Learning
import Linalg
import Testing

@Suite("Layer and loss gradients against central finite differences in Double")
struct LayerGradientTests {
    let bound = 1e-4

    @Test("linear layer, with and without bias")
    func linear() {
        for bias in [true, false] {
            let store = ParameterStore<Double>(seed: 1)
            let layer = Linear(store, name: "l", inputs: 5, outputs: 4, bias: bias)
            let e = GradientCheck.check(layer, store: store, rows: 6, cols: 5)
            #expect(e.input < bound && e.parameters < bound, "bias \(bias): \(e)")
        }
    }

    @Test("activations", arguments: Activation<Double>.Kind.allCases)
    func activation(kind: Activation<Double>.Kind) {
        let store = ParameterStore<Double>()
        let e = GradientCheck.check(Activation<Double>(kind), store: store, rows: 7, cols: 6)
        #expect(e.input < bound, "\(kind): \(e)")
    }

    @Test("layer norm (after a linear layer so gamma and beta get non-trivial values)")
    func layerNorm() {
        let store = ParameterStore<Double>(seed: 2)
        let net = Sequential<Double>([
            Linear(store, name: "l", inputs: 4, outputs: 6), LayerNorm(store, name: "ln", width: 6),
        ])
        // Move gamma/beta off their 1/0 start so their gradients are exercised in general position.
        let gamma = store.view(named: "ln.gamma")!, beta = store.view(named: "ln.beta")!
        for i in 0..<6 { store.value(gamma)[i] = 0.5 + Double(i) * 0.2; store.value(beta)[i] = Double(i) * 0.1 - 0.2 }
        let e = GradientCheck.check(net, store: store, rows: 5, cols: 4)
        #expect(e.input < bound && e.parameters < bound, "\(e)")
    }

    @Test("dropout with a fixed mask; masks depend on (step, global row), not on the batch split")
    func dropout() {
        let store = ParameterStore<Double>()
        let layer = Dropout<Double>(rate: 0.3, seed: 9)
        layer.step = 4
        layer.firstRow = 100
        let e = GradientCheck.check(layer, store: store, rows: 8, cols: 10)
        #expect(e.input < bound, "\(e)")
        // The same rows split over two calls give the same mask.
        let ones = Tensor<Double>(rows: 8, cols: 10, data: [Double](repeating: 1, count: 80))
        let whole = layer.forward(ones).data
        layer.firstRow = 100
        let top = layer.forward(Tensor(rows: 3, cols: 10, data: [Double](repeating: 1, count: 30))).data
        layer.firstRow = 103
        let bottom = layer.forward(Tensor(rows: 5, cols: 10, data: [Double](repeating: 1, count: 50))).data
        #expect(whole == top + bottom)
        let zeros = whole.filter { $0 == 0 }.count
        #expect(zeros > 10 && zeros < 45, "about 30% dropped, got \(zeros)/80")
        layer.isTraining = false
        #expect(layer.forward(ones).data == ones.data)
    }

    @Test("MLP (sequential linear + GELU + sigmoid)")
    func mlp() {
        let store = ParameterStore<Double>(seed: 4)
        let net = Sequential<Double>([
            Linear(store, name: "a", inputs: 6, outputs: 8), Activation(.gelu),
            Linear(store, name: "b", inputs: 8, outputs: 3), Activation(.sigmoid),
        ])
        let e = GradientCheck.check(net, store: store, rows: 5, cols: 6)
        #expect(e.input < bound && e.parameters < bound, "\(e)")
    }

    @Test("DCN-v2 cross network, full rank and low-rank mixture of experts")
    func cross() {
        for kind in [CrossKind.fullRank, .lowRank(rank: 2, experts: 3)] {
            let store = ParameterStore<Double>(seed: 5)
            let net = CrossNetwork(store, name: "c", width: 6, layers: 3, kind: kind)
            // Non-zero biases so the bias paths carry signal.
            for v in store.views where v.name.hasSuffix("bias") {
                for i in 0..<v.count { store.value(v)[i] = 0.1 * Double(i % 5) - 0.2 }
            }
            let e = GradientCheck.check(net, store: store, rows: 4, cols: 6)
            #expect(e.input < bound && e.parameters < bound, "\(kind): \(e)")
        }
    }

    @Test("concatenation and split are each other's inverse and pass gradients through")
    func concat() {
        let store = ParameterStore<Double>(seed: 6)
        let a = Linear(store, name: "a", inputs: 3, outputs: 2), b = Linear(store, name: "b", inputs: 3, outputs: 4)
        var rng = RandomStream(seed: 1)
        var x = Tensor(rows: 5, cols: 3, data: GradientCheck.random(15, &rng))
        let g = GradientCheck.random(30, &rng)
        let loss = { GradientCheck.dot(Tensor.concat([a.forward(x), b.forward(x)]).data, g) }
        store.zeroGrads()
        _ = loss()
        let parts = Tensor(rows: 5, cols: 6, data: g).split([2, 4])
        var dx = a.backward(parts[0])
        dx.add(b.backward(parts[1]))
        let dp = Array(store.grads)
        let ndx = GradientCheck.numeric(count: 15, get: { x.data[$0] }, set: { x.data[$0] = $1 }, loss: loss)
        #expect(GradientCheck.relativeError(dx.data, ndx) < bound)
        #expect(GradientCheck.relativeError(dp, GradientCheck.numeric(store, loss: loss)) < bound)
        let t = Tensor(rows: 2, cols: 5, data: (0..<10).map(Double.init))
        #expect(Tensor.concat(t.split([1, 3, 1])).data == t.data)
    }

    @Test("embedding table: sparse row gradients equal the dense numeric gradient; duplicates summed")
    func embedding() {
        let table = EmbeddingTable<Double>(name: "t", rows: 7, dim: 3, std: 1, seed: 2)
        let indices = [1, 4, 4, 0, 1, 6]  // (B = 3, fields = 2) with repeated rows
        var rng = RandomStream(seed: 8)
        let g = GradientCheck.random(indices.count * 3, &rng)
        let loss = { GradientCheck.dot(table.forward(indices, fields: 2).data, g) }
        _ = loss()
        let sparse = table.backward(Tensor(rows: 3, cols: 6, data: g))
        #expect(sparse.rows == [0, 1, 4, 6])
        var dense = [Double](repeating: 0, count: 21)
        for (i, r) in sparse.rows.enumerated() { for c in 0..<3 { dense[Int(r) * 3 + c] = sparse.grads[i * 3 + c] } }
        let numeric = GradientCheck.numeric(
            count: 21, get: { table.values[$0] }, set: { table.values[$0] = $1 }, loss: loss)
        #expect(GradientCheck.relativeError(dense, numeric) < bound)
        // Hashed ids land inside the table and depend on the field salt.
        let rows = (0..<1000).map { table.row(forID: Int64($0) * 7919, salt: 3) }
        #expect(rows.allSatisfy { $0 >= 0 && $0 < 7 })
        #expect(Set(rows).count == 7)
    }

    @Test("multi-head target attention with a padded mask, including an all-padding row")
    func attention() {
        let store = ParameterStore<Double>(seed: 7)
        let att = TargetAttention(store, name: "att", queryWidth: 5, keyWidth: 4, heads: 2, headWidth: 3, outputs: 4)
        let b = 3, t = 4
        var rng = RandomStream(seed: 11)
        var query = Tensor(rows: b, cols: 5, data: GradientCheck.random(b * 5, &rng))
        var keys = GradientCheck.random(b * t * 4, &rng)
        var values = GradientCheck.random(b * t * 4, &rng)
        // Row 0: 3 real items; row 1: all padding; row 2: 1 real item (at the end).
        let mask = [true, true, true, false, false, false, false, false, false, false, false, true]
        let g = GradientCheck.random(b * 4, &rng)
        let forward = { att.forward(query: query, keys: keys, values: values, mask: mask, length: t) }
        let loss = { GradientCheck.dot(forward().data, g) }
        store.zeroGrads()
        let y = forward()
        #expect(y.data.allSatisfy { $0.isFinite })
        #expect(y.data[4..<8].allSatisfy { $0 == 0 }, "all-padding row gives zeros: \(y.data[4 ..< 8])")
        let a = att.lastAttention  // (B, h, T)
        #expect(a.allSatisfy { $0.isFinite })
        #expect(abs(a[0..<4].reduce(0, +) - 1) < 1e-12 && a[3] == 0, "masked softmax sums to 1 over real items")
        let grads = att.backward(Tensor(rows: b, cols: 4, data: g))
        #expect(grads.query.data.allSatisfy { $0.isFinite } && grads.keys.allSatisfy { $0.isFinite })
        #expect(grads.keys[(1 * t) * 4..<(2 * t) * 4].allSatisfy { $0 == 0 }, "no gradient into a padded row")
        let dp = Array(store.grads)
        let nq = GradientCheck.numeric(
            count: query.count, get: { query.data[$0] }, set: { query.data[$0] = $1 }, loss: loss)
        let nk = GradientCheck.numeric(count: keys.count, get: { keys[$0] }, set: { keys[$0] = $1 }, loss: loss)
        let nv = GradientCheck.numeric(count: values.count, get: { values[$0] }, set: { values[$0] = $1 }, loss: loss)
        let np = GradientCheck.numeric(store, loss: loss)
        #expect(GradientCheck.relativeError(grads.query.data, nq) < bound)
        #expect(GradientCheck.relativeError(grads.keys, nk) < bound)
        #expect(GradientCheck.relativeError(grads.values, nv) < bound)
        #expect(GradientCheck.relativeError(dp, np) < bound)
    }

    @Test("MMoE: experts, per-task softmax gates and towers")
    func mmoe() {
        let store = ParameterStore<Double>(seed: 8)
        let m = MMoE(store, name: "m", inputs: 5, expertCount: 3, expertWidths: [6, 4], tasks: 2, towerWidths: [3, 1])
        var rng = RandomStream(seed: 12)
        var x = Tensor(rows: 4, cols: 5, data: GradientCheck.random(20, &rng))
        let g = [GradientCheck.random(4, &rng), GradientCheck.random(4, &rng)]
        let loss = { zip(m.forward(x), g).reduce(0) { $0 + GradientCheck.dot($1.0.data, $1.1) } }
        store.zeroGrads()
        _ = m.forward(x)
        let gates = m.gateWeights(task: 1)
        for r in 0..<4 { #expect(abs(gates[r * 3..<r * 3 + 3].reduce(0, +) - 1) < 1e-12) }
        let dx = m.backward(g.map { Tensor(rows: 4, cols: 1, data: $0) })
        let dp = Array(store.grads)
        let ndx = GradientCheck.numeric(count: 20, get: { x.data[$0] }, set: { x.data[$0] = $1 }, loss: loss)
        let ndp = GradientCheck.numeric(store, loss: loss)
        #expect(GradientCheck.relativeError(dx.data, ndx) < bound)
        #expect(GradientCheck.relativeError(dp, ndp) < bound)
        // The gate parameters in particular.
        let gateIdx = store.views.filter { $0.name.contains("gate") }.flatMap { $0.offset..<$0.offset + $0.count }
        #expect(GradientCheck.relativeError(gateIdx.map { dp[$0] }, gateIdx.map { ndp[$0] }) < bound)
        #expect(gateIdx.map { abs(dp[$0]) }.max()! > 1e-6, "gates receive gradient")
    }

    @Test("the whole DCN-v2 + MMoE model in Double: dense parameters and embedding rows")
    func wholeModel() {
        var config = CrossMMoEConfig()
        config.fields = 3; config.dim = 2; config.tableRows = 11; config.denseWidth = 2
        config.crossLayers = 2; config.crossKind = .lowRank(rank: 2, experts: 2)
        config.experts = 2; config.expertWidths = [5, 4]; config.towerWidths = [3, 1]; config.dropout = 0.2
        let model = CrossMMoEModel<Double>(config)
        let data = SyntheticClicks(fields: 3, denseWidth: 2, tasks: 2, vocabulary: 30)
        var batch: ClickBatch<Double> = data.batch(10..<16, table: model.table)
        batch.weights = [1, 0.5, 2, 1, 0, 1.5]
        let loss = { model.lossAndGradients(batch, normalizer: 6, step: 3).loss }
        model.parameters.zeroGrads()
        let (_, sparse) = model.lossAndGradients(batch, normalizer: 6, step: 3)
        let dp = Array(model.parameters.grads)
        let ndp = GradientCheck.numeric(model.parameters, loss: loss)
        #expect(GradientCheck.relativeError(dp, ndp) < bound)
        var dense = [Double](repeating: 0, count: model.table.values.count)
        for (i, r) in sparse[0].rows.enumerated() {
            for c in 0..<2 { dense[Int(r) * 2 + c] = sparse[0].grads[i * 2 + c] }
        }
        let nt = GradientCheck.numeric(
            count: dense.count, get: { model.table.values[$0] }, set: { model.table.values[$0] = $1 }, loss: loss)
        #expect(GradientCheck.relativeError(dense, nt) < bound)
    }
}

@Suite("Loss gradients against central finite differences in Double")
struct LossGradientTests {
    let bound = 1e-4

    func check(_ count: Int, seed: UInt64, _ f: ([Double]) -> (Double, [Double])) -> Double {
        var rng = RandomStream(seed: seed)
        var z = GradientCheck.random(count, &rng, scale: 2)
        let analytic = f(z).1
        let numeric = GradientCheck.numeric(count: count, get: { z[$0] }, set: { z[$0] = $1 }, loss: { f(z).0 })
        return GradientCheck.relativeError(analytic, numeric)
    }

    @Test("binary cross-entropy on logits with per-example weights and soft labels")
    func bce() {
        let labels: [Double] = [1, 0, 1, 1, 0, 0.3, 0, 1]
        let weights: [Double] = [1, 2, 0.5, 0, 1, 1, 3, 1]
        #expect(
            check(8, seed: 1) { Loss.binaryCrossEntropy(logits: $0, labels: labels, weights: weights, normalizer: 8) }
                < bound)
        // Value: log 2 at z = 0, and stable at large |z|.
        #expect(
            abs(Loss.binaryCrossEntropy(logits: [0.0], labels: [1.0], normalizer: 1).loss - 0.6931471805599453) < 1e-12)
        let big = Loss.binaryCrossEntropy(logits: [Float(80), -80], labels: [0, 1], normalizer: 2)
        #expect(abs(big.loss - 80) < 1e-3 && big.gradient.allSatisfy { $0.isFinite })
    }

    @Test("focal loss, gamma 2 and gamma 0 (which is alpha-weighted BCE)")
    func focal() {
        let labels: [Double] = [1, 0, 1, 1, 0, 0, 1, 0]
        #expect(
            check(8, seed: 2) { Loss.focal(logits: $0, labels: labels, gamma: 2, alpha: 0.25, normalizer: 8) } < bound)
        #expect(
            check(8, seed: 3) { Loss.focal(logits: $0, labels: labels, gamma: 1, alpha: 0.7, normalizer: 8) } < bound)
        let z: [Double] = [0.3, -1.2, 2.0, 0.1, -0.4, 1.1, -2.2, 0.9]
        let f0 = Loss.focal(logits: z, labels: labels, gamma: 0, alpha: 0.5, normalizer: 8).loss
        let bce = Loss.binaryCrossEntropy(logits: z, labels: labels, normalizer: 8).loss
        #expect(abs(f0 - 0.5 * bce) < 1e-12)
    }

    @Test("sampled softmax with logQ correction")
    func sampledSoftmax() {
        var rng = RandomStream(seed: 4)
        let logQ = Tensor(rows: 3, cols: 5, data: (0..<15).map { _ in Foundation.log(rng.uniform() * 0.5 + 0.01) })
        let w: [Double] = [1, 0.5, 2]
        #expect(
            check(15, seed: 5) { z in
                let r = Loss.sampledSoftmax(
                    logits: Tensor(rows: 3, cols: 5, data: z), logQ: logQ, weights: w, normalizer: 3)
                return (r.loss, r.gradient.data)
            } < bound)
        // Uniform logQ does not change the loss (the correction is a per-row shift).
        let z = Tensor(rows: 1, cols: 3, data: [1.0, 2, 3])
        let a = Loss.sampledSoftmax(logits: z, logQ: Tensor(rows: 1, cols: 3, data: [-2, -2, -2]), normalizer: 1).loss
        let b = Loss.sampledSoftmax(logits: z, logQ: .zeros(1, 3), normalizer: 1).loss
        #expect(abs(a - b) < 1e-12 && abs(b - (Foundation.log(exp(1.0) + exp(2) + exp(3)) - 1)) < 1e-12)
    }

    @Test("hinge ranking loss")
    func hinge() {
        #expect(
            check(4 + 12, seed: 6) { z in
                let r = Loss.hinge(
                    positive: Array(z[0..<4]), negative: Tensor(rows: 4, cols: 3, data: Array(z[4...])), margin: 0.5,
                    normalizer: 4)
                return (r.loss, r.positive + r.negative.data)
            } < bound)
        let r = Loss.hinge(
            positive: [2.0], negative: Tensor(rows: 1, cols: 2, data: [0.5, 1.8]), margin: 1, normalizer: 1)
        #expect(abs(r.loss - 0.8) < 1e-12 && r.negative.data == [0, 1] && r.positive == [-1])
    }
}

import Foundation

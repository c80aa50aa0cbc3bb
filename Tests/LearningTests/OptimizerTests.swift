import Collective
import Learning
import Linalg
import Testing

@Suite("Optimizers fit tiny problems; schedules")
struct OptimizerTests {
    /// Logistic regression on 256 separable-ish points in 4-D with a 4→8→1 MLP, full batch.
    /// Returns the final mean BCE.
    func fit(_ kind: OptimizerKind, lr: Double, steps: Int) -> Double {
        let store = ParameterStore<Float>(seed: 3)
        let net = Sequential<Float>.mlp(store, name: "m", widths: [4, 8, 1], activation: .relu, finalActivation: false)
        var rng = RandomStream(seed: 21)
        let n = 256
        let x = (0..<n * 4).map { _ in Float(rng.normal()) }
        var y = [Float](repeating: 0, count: n)
        for i in 0..<n {
            let a: Float = x[i * 4] - 0.5 * x[i * 4 + 1]
            let b: Float = 0.3 * x[i * 4 + 2] * x[i * 4 + 3]
            y[i] = a + b > 0 ? 1 : 0
        }
        let opt = Optimizer<Float>(kind, count: store.count)
        var loss: Float = 0
        for _ in 0..<steps {
            store.zeroGrads()
            let z = net.forward(Tensor(rows: n, cols: 4, data: x))
            let (l, g) = Loss.binaryCrossEntropy(logits: z.data, labels: y, normalizer: Float(n))
            loss = l
            _ = net.backward(Tensor(rows: n, cols: 1, data: g))
            opt.update(values: store.values, grads: store.grads, lr: lr)
        }
        return Double(loss)
    }

    @Test(
        "each dense optimizer brings the loss from ~0.69 below 0.25 in 300 steps",
        arguments: [
            ("sgd+momentum", OptimizerKind.sgd(momentum: 0.9), 0.1),
            ("adam", OptimizerKind.adam, 0.02),
            ("adamw", OptimizerKind.adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01), 0.02),
            ("adagrad", OptimizerKind.adagrad(epsilon: 1e-8, initialAccumulator: 0.1), 0.1),
        ])
    func dense(name: String, kind: OptimizerKind, lr: Double) {
        let loss = fit(kind, lr: lr, steps: 300)
        #expect(loss < 0.25, "\(name): final loss \(loss)")
    }

    @Test("plain SGD (no momentum) also fits, more slowly")
    func sgd() { #expect(fit(.sgd(momentum: 0), lr: 0.5, steps: 300) < 0.3) }

    /// Sparse problem: each of 50 ids has a target vector; minimise Σ ‖e_id − target‖² over
    /// batches that touch a few ids. Untouched rows must not move.
    @Test(
        "sparse variants fit embedding rows and touch only the rows a batch used",
        arguments: [
            ("sgd+momentum", OptimizerKind.sgd(momentum: 0.5), 0.2),
            ("adam", OptimizerKind.adam, 0.05),
            ("adagrad", OptimizerKind.adagrad(epsilon: 1e-8, initialAccumulator: 0.1), 0.5),
        ])
    func sparse(name: String, kind: OptimizerKind, lr: Double) {
        let rows = 60, dim = 4
        let table = EmbeddingTable<Float>(name: "e", rows: rows, dim: dim, std: 0.1, seed: 5)
        let opt = Optimizer<Float>(kind, count: rows * dim)
        let target = (0..<rows * dim).map { Float(($0 * 37) % 11) / 10 - 0.5 }
        var rng = RandomStream(seed: 6)
        let untouched = Array(table.values[50 * dim..<rows * dim])
        func loss() -> Float {
            (0..<50 * dim).reduce(0) { $0 + (table.values[$1] - target[$1]) * (table.values[$1] - target[$1]) } / 50
        }
        let before = loss()
        for step in 1...400 {
            let ids = (0..<8).map { _ in rng.int(below: 50) }  // rows 50..<60 are never used
            let e = table.forward(ids, fields: 1)
            var g = [Float](repeating: 0, count: e.count)
            for (i, id) in ids.enumerated() {
                for c in 0..<dim { g[i * dim + c] = 2 * (e.data[i * dim + c] - target[id * dim + c]) / 8 }
            }
            let grad = table.backward(Tensor(rows: 8, cols: dim, data: g))
            opt.updateRows(table: &table.values, gradient: grad, lr: lr, step: step)
        }
        #expect(before > 0.2 && loss() < 0.01, "\(name): loss \(before) → \(loss())")
        #expect(Array(table.values[50 * dim..<rows * dim]) == untouched, "\(name) moved rows no batch used")
    }

    @Test("warm-up is linear from 0; linear, cosine and exponential decay reach their targets")
    func schedules() {
        let lin = LearningRateSchedule(base: 1, warmupSteps: 10, decay: .linear(totalSteps: 110, final: 0.1))
        #expect(abs(lin.rate(at: 1) - 0.1) < 1e-12 && lin.rate(at: 10) == 1)
        #expect(
            abs(lin.rate(at: 60) - 0.55) < 1e-12 && abs(lin.rate(at: 110) - 0.1) < 1e-12
                && abs(lin.rate(at: 500) - 0.1) < 1e-12)
        let cos = LearningRateSchedule(base: 2, warmupSteps: 0, decay: .cosine(totalSteps: 100, final: 0))
        #expect(abs(cos.rate(at: 50) - 1) < 1e-12 && abs(cos.rate(at: 100)) < 1e-12)
        let exp = LearningRateSchedule(base: 1, warmupSteps: 2, decay: .exponential(rate: 0.5))
        #expect(exp.rate(at: 1) == 0.5 && exp.rate(at: 4) == 0.25)
        #expect(LearningRateSchedule(base: 0.3).rate(at: 1000) == 0.3)
    }
}

@Suite("Data-parallel pieces on a one-rank world")
struct DataParallelUnitTests {
    @Test("batch slices cover the global batch exactly once for any rank count")
    func slices() {
        for size in 1...5 {
            let parts = (0..<size).map { BatchSharding.slice(globalBatch: 23, rank: $0, size: size) }
            #expect(parts.flatMap { Array($0) } == Array(0..<23))
        }
    }

    @Test("sparse rows are de-duplicated and summed in order")
    func dedup() {
        let s = SparseRows<Float>(dim: 2, rows: [5, 1, 5, 3, 1], grads: [1, 2, 3, 4, 10, 20, 5, 6, 100, 200])
            .deduplicated()
        #expect(s.rows == [1, 3, 5] && s.grads == [103, 204, 5, 6, 11, 22])
        var comm = try! Communicator.world()
        comm.maxElementsPerCall = 3
        let merged = try! SparseExchange.allgatherSum(
            SparseRows<Float>(dim: 2, rows: [2, 2], grads: [1, 1, 2, 2]), comm: comm)
        #expect(merged.rows == [2] && merged.grads == [3, 3])
    }

    @Test("merging ascending runs (one per sender) equals de-duplicating them, bit for bit")
    func mergeRuns() {
        var rng = RandomStream(seed: 5)
        for runCount in [1, 2, 3, 4, 17] {
            var rows: [Int64] = [], runs: [Int] = []
            for _ in 0..<runCount {
                let run = Set((0..<Int(rng.next() % 40)).map { _ in Int64(rng.next() % 60) }).sorted()
                rows += run
                runs.append(run.count)
            }
            let grads = (0..<rows.count * 3).map { _ in Float(rng.normal()) }
            let s = SparseRows<Float>(dim: 3, rows: rows, grads: grads)
            let merged = s.mergingSortedRuns(runs), reference = s.deduplicated()
            #expect(merged.rows == reference.rows && merged.grads == reference.grads, "\(runCount) runs")
        }
        // A run that is not ascending falls back to the sort.
        let s = SparseRows<Float>(dim: 1, rows: [3, 1, 2], grads: [1, 2, 3]).mergingSortedRuns([2, 1])
        #expect(s.rows == [1, 2, 3] && s.grads == [2, 3, 1])
    }

    @Test("fused allreduce over buckets is the identity on one rank; the parameter store is one buffer")
    func store() throws {
        let store = ParameterStore<Float>(seed: 1)
        let a = store.add("a", shape: [3, 4], .glorot(fanIn: 3, fanOut: 4))
        let b = store.add("b", shape: [5], .ones)
        for i in 0..<2000 { store.add("p\(i)", shape: [2], .zeros) }  // forces reallocation
        #expect(a.offset == 0 && b.offset == 12 && store.count == 17 + 4000)
        #expect((0..<5).allSatisfy { store.value(b)[$0] == 1 })
        #expect(store.value(a) == store.values.baseAddress!)
        store.grads[7] = 3
        try GradientFusion(bucketElements: 5).allreduceSum(store.grads, comm: try Communicator.world())
        #expect(store.grads[7] == 3)
        // The same seed gives the same initial values.
        let again = ParameterStore<Float>(seed: 1)
        again.add("a", shape: [3, 4], .glorot(fanIn: 3, fanOut: 4))
        #expect(Array(again.values) == Array(store.values[0..<12]))
    }
}

import Learning
import Linalg
import Testing

@Suite("Sequence transformer (TransAct-style, candidate as the final token)")
struct SequenceTransformerTests {
    let bound = 1e-4

    /// B = 3 examples of L = 4 slots: row 0 all real, row 1 all padding, row 2 two real events
    /// then padding; 2 heads of width 3, 2 blocks, FFN width 5.
    static func setup() -> (SequenceTransformer<Double>, ParameterStore<Double>, [Double], [Bool], Tensor<Double>) {
        let store = ParameterStore<Double>(seed: 5)
        let tf = SequenceTransformer(store, name: "tf", width: 6, length: 4, heads: 2, layers: 2, ffnWidth: 5)
        // Move the LN gains/biases and position rows off their start so every gradient is general.
        var rng = RandomStream(seed: 21)
        for v in store.views where v.name.contains("norm") || v.name.contains("position") || v.name.contains("bias") {
            for i in 0..<v.count { store.value(v)[i] += rng.normal() * 0.3 }
        }
        let events = GradientCheck.random(3 * 4 * 6, &rng)
        let mask = [true, true, true, true, false, false, false, false, true, true, false, false]
        let candidate = Tensor(rows: 3, cols: 6, data: GradientCheck.random(18, &rng))
        return (tf, store, events, mask, candidate)
    }

    @Test("backward against central finite differences: every parameter, the events and the candidate")
    func gradients() {
        let (tf, store, start, mask, initial) = Self.setup()
        var events = start, candidate = initial
        var rng = RandomStream(seed: 22)
        let g = GradientCheck.random(18, &rng)
        let loss = { GradientCheck.dot(tf.forward(events: events, mask: mask, candidate: candidate).data, g) }
        store.zeroGrads()
        let y = tf.forward(events: events, mask: mask, candidate: candidate)
        #expect(y.data.allSatisfy { $0.isFinite })
        let grads = tf.backward(Tensor(rows: 3, cols: 6, data: g))
        let dp = Array(store.grads)
        #expect(grads.events[4 * 6..<8 * 6].allSatisfy { $0 == 0 }, "no gradient into padding")
        #expect(grads.events[10 * 6..<12 * 6].allSatisfy { $0 == 0 }, "no gradient into padding")
        let ne = GradientCheck.numeric(count: events.count, get: { events[$0] }, set: { events[$0] = $1 }, loss: loss)
        let nc = GradientCheck.numeric(
            count: candidate.count, get: { candidate.data[$0] }, set: { candidate.data[$0] = $1 }, loss: loss)
        let np = GradientCheck.numeric(store, loss: loss)
        #expect(GradientCheck.relativeError(grads.events, ne) < bound)
        #expect(GradientCheck.relativeError(grads.candidate.data, nc) < bound)
        #expect(GradientCheck.relativeError(dp, np) < bound)
        // Every parameter tensor receives a gradient (none is disconnected).
        for v in store.views {
            #expect((0..<v.count).contains { store.grad(v)[$0] != 0 }, "\(v.name) has no gradient")
        }
    }

    @Test("padding is masked: changing a padded slot's encoding changes nothing")
    func padding() {
        let (tf, _, start, mask, initial) = Self.setup()
        var events = start, candidate = initial
        let before = tf.forward(events: events, mask: mask, candidate: candidate).data
        for j in 10 * 6..<12 * 6 { events[j] += 5 }
        for j in 4 * 6..<8 * 6 { events[j] -= 3 }
        #expect(tf.forward(events: events, mask: mask, candidate: candidate).data == before)
        candidate.data[0] += 1
        #expect(tf.forward(events: events, mask: mask, candidate: candidate).data[0..<6] != before[0..<6])
    }

    @Test("request path (events encoded once, candidates as queries) equals the batch path")
    func request() {
        let (tf, _, _, _, _) = Self.setup()
        var rng = RandomStream(seed: 23)
        for m in [0, 2, 4] {
            let events = GradientCheck.random(m * 6, &rng)
            let n = 5
            let candidates = Tensor(rows: n, cols: 6, data: GradientCheck.random(n * 6, &rng))
            var slots = [Double](repeating: 0, count: n * 4 * 6), mask = [Bool](repeating: false, count: n * 4)
            for i in 0..<n {
                for t in 0..<m {
                    mask[i * 4 + t] = true
                    for c in 0..<6 { slots[(i * 4 + t) * 6 + c] = events[t * 6 + c] }
                }
            }
            let batch = tf.forward(events: slots, mask: mask, candidate: candidates).data
            let fast = tf.forwardRequest(events: events, count: m, candidates: candidates).data
            let worst = zip(batch, fast).map { abs($0 - $1) }.max()!
            #expect(worst < 1e-12, "\(m) events: max difference \(worst)")
            #expect(Set(fast.map { ($0 * 1e6).rounded() }).count > 20, "outputs differ between candidates")
        }
    }
}

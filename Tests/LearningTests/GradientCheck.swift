import Learning
import Linalg

/// Central finite differences in Double against the layers' own backward code (the layers are
/// generic over the scalar; the check instantiates them with Double).
enum GradientCheck {
    static let h = 1e-5

    /// ‖a − n‖ / max(‖a‖ + ‖n‖, tiny): the relative error the issue bounds by 1e-4.
    static func relativeError(_ a: [Double], _ n: [Double]) -> Double {
        precondition(a.count == n.count)
        var diff = 0.0, na = 0.0, nn = 0.0
        for i in a.indices {
            diff += (a[i] - n[i]) * (a[i] - n[i])
            na += a[i] * a[i]
            nn += n[i] * n[i]
        }
        let scale = na.squareRoot() + nn.squareRoot()
        return scale < 1e-12 ? diff.squareRoot() : diff.squareRoot() / scale
    }

    /// Numeric gradient of `loss` with respect to `count` scalars read by `get` and written by
    /// `set`.
    static func numeric(count: Int, get: (Int) -> Double, set: (Int, Double) -> Void, loss: () -> Double) -> [Double] {
        (0..<count).map { i in
            let v = get(i)
            set(i, v + h)
            let plus = loss()
            set(i, v - h)
            let minus = loss()
            set(i, v)
            return (plus - minus) / (2 * h)
        }
    }

    /// Numeric gradient with respect to every parameter of `store`.
    static func numeric(_ store: ParameterStore<Double>, loss: () -> Double) -> [Double] {
        let values = store.values
        return numeric(count: store.count, get: { values[$0] }, set: { values[$0] = $1 }, loss: loss)
    }

    static func random(_ n: Int, _ rng: inout RandomStream, scale: Double = 1) -> [Double] {
        (0..<n).map { _ in rng.normal() * scale }
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    /// Checks a single-input layer: the projection L = Σ g ⊙ layer(x) for random x and g.
    /// Returns (input error, parameter error).
    static func check(
        _ layer: some Layer<Double>, store: ParameterStore<Double>, rows: Int, cols: Int, seed: UInt64 = 3
    )
        -> (input: Double, parameters: Double)
    {
        var rng = RandomStream(seed: seed)
        var x = Tensor(rows: rows, cols: cols, data: random(rows * cols, &rng))
        let y0 = layer.forward(x)
        let g = random(y0.count, &rng)
        store.zeroGrads()
        _ = layer.forward(x)
        let dx = layer.backward(Tensor(rows: y0.rows, cols: y0.cols, data: g)).data
        let dp = Array(store.grads)
        let loss = { dot(layer.forward(x).data, g) }
        let ndx = numeric(count: x.count, get: { x.data[$0] }, set: { x.data[$0] = $1 }, loss: loss)
        let ndp = numeric(store, loss: loss)
        return (relativeError(dx, ndx), store.count == 0 ? 0 : relativeError(dp, ndp))
    }
}

import Linalg

/// Inverted dropout: in training, each value is zeroed with probability `rate` and the rest
/// scaled by 1/(1 − rate); at inference it is the identity.
///
/// The mask of row r at step s comes from stream `(seed, s, firstRow + r)`: set `step` and
/// `firstRow` (the global index of the batch's first example) so that masks depend on the
/// example, not on the rank that processes it.
public final class Dropout<T: Real>: Layer {
    public let rate: Double
    public let seed: UInt64
    public var isTraining = true
    /// Training step (part of the mask's key).
    public var step = 0
    /// Global index of the first row of the next batch (part of the mask's key).
    public var firstRow = 0
    private var mask: [T] = []

    public init(rate: Double, seed: UInt64) {
        precondition(rate >= 0 && rate < 1, "Dropout rate must be in [0, 1)")
        self.rate = rate
        self.seed = seed
    }

    @_specialize(where T == Float)
    public func forward(_ x: Tensor<T>) -> Tensor<T> {
        guard isTraining, rate > 0 else {
            mask = []
            return x
        }
        let keep = T(1 / (1 - rate))
        mask = [T](repeating: 0, count: x.count)
        var y = x
        for r in 0..<x.rows {
            var rng = RandomStream(seed: seed, rank: UInt64(step), index: UInt64(firstRow + r))
            for c in 0..<x.cols where rng.uniform() >= rate {
                mask[r * x.cols + c] = keep
            }
        }
        for i in 0..<y.count { y.data[i] *= mask[i] }
        return y
    }

    @_specialize(where T == Float)
    public func backward(_ dy: Tensor<T>) -> Tensor<T> {
        if mask.isEmpty { return dy }
        var dx = dy
        for i in 0..<dx.count { dx.data[i] *= mask[i] }
        return dx
    }
}

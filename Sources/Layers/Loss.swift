/// Losses: each returns the loss summed over examples and divided by `normalizer`, and the
/// gradient with respect to its inputs (same shapes as the inputs).
///
/// In data-parallel training pass the GLOBAL batch size as `normalizer`: each rank's
/// gradient is then its share of the global mean, and the sum over ranks (the allreduce) is
/// exactly the gradient of the global mean loss, whatever the rank count.
public enum Loss {
    /// Binary cross-entropy on logits z with labels y ∈ [0, 1] and per-example weights w:
    /// Σ w·(softplus(z) − y·z) / normalizer.
    @_specialize(where T == Float)
    public static func binaryCrossEntropy<T: Real>(
        logits: [T], labels: [T], weights: [T]? = nil, normalizer: T
    ) -> (loss: T, gradient: [T]) {
        precondition(
            labels.count == logits.count && (weights?.count ?? logits.count) == logits.count,
            "binaryCrossEntropy: logits, labels and weights differ in length")
        var loss: T = 0
        var g = [T](repeating: 0, count: logits.count)
        for i in 0..<logits.count {
            let w = weights?[i] ?? 1, z = logits[i], y = labels[i]
            loss += w * (T.softplus(z) - y * z)
            g[i] = w * (T.sigmoid(z) - y) / normalizer
        }
        return (loss / normalizer, g)
    }

    /// Focal loss (Lin et al. 2017) on logits, labels y ∈ {0, 1}:
    /// −α_t·(1 − p_t)^γ·log p_t, with p_t = σ(z) for y = 1 and 1 − σ(z) for y = 0,
    /// α_t = α or 1 − α. γ = 0, α = 0.5 gives half the BCE. Needs γ = 0 or γ ≥ 1.
    @_specialize(where T == Float)
    public static func focal<T: Real>(
        logits: [T], labels: [T], gamma: T = 2, alpha: T = 0.25, weights: [T]? = nil, normalizer: T
    ) -> (loss: T, gradient: [T]) {
        precondition(labels.count == logits.count, "focal: logits and labels differ in length")
        precondition(gamma == 0 || gamma >= 1, "focal: gamma must be 0 or ≥ 1")
        var loss: T = 0
        var g = [T](repeating: 0, count: logits.count)
        for i in 0..<logits.count {
            let w = weights?[i] ?? 1
            let positive = labels[i] > T(0.5)
            let zt = positive ? logits[i] : -logits[i]  // p_t = σ(z_t)
            let pt = T.sigmoid(zt)
            let logPt = -T.softplus(-zt)
            let at = positive ? alpha : 1 - alpha
            let q = 1 - pt  // = σ(−z_t)
            let qg = gamma == 0 ? 1 : T.pow(q, gamma)
            loss += w * (-at * qg * logPt)
            // d/dz_t of −(1−p)^γ log p = γ(1−p)^(γ−1)·p(1−p)·log p − (1−p)^γ(1−p)
            //                          = (1−p)^γ·(γ·p·log p − (1−p)).
            let dzt = -at * qg * (1 - pt) + at * qg * gamma * pt * logPt
            g[i] = w * (positive ? dzt : -dzt) / normalizer  // dz_t/dz = ±1
        }
        return (loss / normalizer, g)
    }

    /// Sampled softmax with logQ correction (Yi et al. 2019; Bengio & Senécal 2008):
    /// logits (B, C) score each example's C candidates, column `0` being the positive;
    /// logQ (B, C) holds log sampling probabilities; the loss is
    /// Σ_b −w_b·log softmax(z_b − logQ_b)[0] / normalizer.
    @_specialize(where T == Float)
    public static func sampledSoftmax<T: Real>(
        logits: Tensor<T>, logQ: Tensor<T>, weights: [T]? = nil, normalizer: T
    ) -> (loss: T, gradient: Tensor<T>) {
        precondition(
            logQ.rows == logits.rows && logQ.cols == logits.cols, "sampledSoftmax: logits and logQ differ in shape")
        let b = logits.rows, c = logits.cols
        var p = logits.data
        for i in 0..<p.count { p[i] -= logQ.data[i] }
        var loss: T = 0
        for r in 0..<b {
            var m = -T.infinity
            for j in 0..<c { m = Swift.max(m, p[r * c + j]) }
            var s: T = 0
            for j in 0..<c { s += T.exp(p[r * c + j] - m) }
            let logZ = m + T.log(s)
            let w = weights?[r] ?? 1
            loss += w * (logZ - p[r * c])
            for j in 0..<c { p[r * c + j] = w * (T.exp(p[r * c + j] - logZ) - (j == 0 ? 1 : 0)) / normalizer }
        }
        return (loss / normalizer, Tensor(rows: b, cols: c, data: p))
    }

    /// Max-margin ranking loss: Σ_b Σ_s max(0, margin − pos_b + neg_{b,s}) / normalizer, with
    /// positive scores (B) and negative scores (B, S). Gradients are the subgradient (0 at the
    /// hinge).
    @_specialize(where T == Float)
    public static func hinge<T: Real>(
        positive: [T], negative: Tensor<T>, margin: T = 1, normalizer: T
    ) -> (loss: T, positive: [T], negative: Tensor<T>) {
        precondition(
            negative.rows == positive.count, "hinge: \(positive.count) positives for \(negative.rows) rows of negatives"
        )
        var loss: T = 0
        var dp = [T](repeating: 0, count: positive.count)
        var dn = Tensor<T>.zeros(negative.rows, negative.cols)
        for r in 0..<negative.rows {
            for s in 0..<negative.cols {
                let v = margin - positive[r] + negative[r, s]
                if v > 0 {
                    loss += v
                    dp[r] -= 1 / normalizer
                    dn[r, s] = 1 / normalizer
                }
            }
        }
        return (loss / normalizer, dp, dn)
    }
}

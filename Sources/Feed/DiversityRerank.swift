import Linalg

/// The last stage of a feed: re-orders ranked candidates so that a page does not repeat the same
/// idea — maximal marginal relevance (MMR, Carbonell & Goldstein 1998) over content embeddings,
/// under a sliding-window category cap (at most `maxPerCategory` pins of one category in any
/// `window` consecutive slots, the rule feed blenders use).
///
/// Greedy: slot by slot, among the candidates the cap allows, take the one maximising
///
///     λ · relevance(c) − (1 − λ) · max_{s ∈ last `window` slots} cos(c, s)
///
/// where relevance is the score min–max normalised over the candidates to [0, 1]. λ = 1 keeps the
/// ranked order (still under the cap). When no remaining candidate satisfies the cap, the cap is
/// relaxed for that slot (the feed is never shorter than asked while candidates remain). Ties go
/// to the earlier candidate, so the result is deterministic. Cost: O(k · n · (window + d)).
public struct DiversityRerank: Sendable {
    /// Trade-off between relevance (1) and novelty (0), in [0, 1].
    public var lambda: Double
    /// Slots of the sliding window the cap and the similarity penalty look back over (≥ 1).
    public var window: Int
    /// Pins of one category allowed in any `window` consecutive slots (≥ 1).
    public var maxPerCategory: Int

    public init(lambda: Double = 0.7, window: Int = 8, maxPerCategory: Int = 3) {
        precondition((0...1).contains(lambda), "DiversityRerank: lambda must be in [0, 1], got \(lambda)")
        precondition(window >= 1 && maxPerCategory >= 1, "DiversityRerank: window and maxPerCategory must be ≥ 1")
        self.lambda = lambda
        self.window = window
        self.maxPerCategory = maxPerCategory
    }

    /// Candidate positions (into the inputs) of a feed of `k` slots.
    /// - Parameters:
    ///   - scores: relevance per candidate (higher is better), n values.
    ///   - categories: category per candidate (negative = none: never capped), n values.
    ///   - embeddings: n × d content embeddings, row-major (any scale: cosines are taken).
    public func order(scores: [Float], categories: [Int32], embeddings: [Float], d: Int, k: Int) -> [Int] {
        let n = scores.count
        precondition(categories.count == n && embeddings.count == n * d, "DiversityRerank: inconsistent inputs")
        guard n > 0, k > 0 else { return [] }
        let lo = scores.min()!, hi = scores.max()!
        let span = hi > lo ? Double(hi - lo) : 1
        let relevance = scores.map { Double($0 - lo) / span }
        // Unit rows, so that a dot product is a cosine.
        var unit = embeddings
        for i in 0..<n {
            var s: Float = 0
            for j in 0..<d { s += unit[i * d + j] * unit[i * d + j] }
            let inv = s > 0 ? 1 / s.squareRoot() : 0
            for j in 0..<d { unit[i * d + j] *= inv }
        }
        // Categories as dense indices (−1 stays "none") so the window counts are an array.
        var dense: [Int32: Int] = [:]
        let category = categories.map { c in
            c < 0
                ? -1
                : dense[c]
                    ?? {
                        dense[c] = dense.count; return dense.count - 1
                    }()
        }
        var inWindow = [Int](repeating: 0, count: dense.count)
        // similarity[t * n + c] = cos(candidate c, the pin picked at slot t), computed once per pick.
        var similarity = [Float](repeating: 0, count: lambda < 1 ? Swift.min(k, n) * n : 0)
        var picked: [Int] = []
        var used = [Bool](repeating: false, count: n)
        let count = min(k, n)
        while picked.count < count {
            let first = max(0, picked.count - (window - 1))  // slots in the window before this one
            var best = -1, bestValue = -Double.infinity, bestCapped = true
            similarity.withUnsafeBufferPointer { sim in
                for c in 0..<n where !used[c] {
                    let capped = category[c] >= 0 && inWindow[category[c]] >= maxPerCategory
                    // An allowed candidate always beats a capped one.
                    if capped && !bestCapped { continue }
                    var nearest: Float = 0
                    if lambda < 1 { for t in first..<picked.count { nearest = max(nearest, sim[t * n + c]) } }
                    let value = lambda * relevance[c] - (1 - lambda) * Double(nearest)
                    if (bestCapped && !capped) || value > bestValue {
                        best = c
                        bestValue = value
                        bestCapped = capped
                    }
                }
            }
            used[best] = true
            picked.append(best)
            if category[best] >= 0 { inWindow[category[best]] += 1 }
            // The slot leaving the window for the next pick.
            let leaving = picked.count - window
            if leaving >= 0, category[picked[leaving]] >= 0 { inWindow[category[picked[leaving]]] -= 1 }
            if lambda < 1 && picked.count < count {
                let t = picked.count - 1
                unit.withUnsafeBufferPointer { u in
                    similarity.withUnsafeMutableBufferPointer { sim in
                        let b = u.baseAddress! + best * d
                        for c in 0..<n where !used[c] {
                            sim[t * n + c] = VectorKernels.dot(u.baseAddress! + c * d, b, d)
                        }
                    }
                }
            }
        }
        return picked
    }

    /// The largest number of pins of one category in any `window` consecutive slots of a feed.
    public static func maxCategoryRun(_ categories: [Int32], window: Int) -> Int {
        var best = 0
        for start in categories.indices {
            var count: [Int32: Int] = [:]
            for c in categories[start..<min(categories.count, start + window)] where c >= 0 {
                count[c, default: 0] += 1
            }
            best = max(best, count.values.max() ?? 0)
        }
        return best
    }
}

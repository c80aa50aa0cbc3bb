import Collective
import Foundation

extension PlattScaling {
    /// Platt scaling fitted on held-out (score, label) pairs spread over the ranks: the same
    /// Newton iterations as `fit(scores:labels:)`, with the gradient and Hessian sums allreduced
    /// each iteration, so no rank gathers the scores. Equal on every rank. Collective.
    public static func fit(scores: [Double], labels: [Double], comm: Communicator, iterations: Int = 100) throws
        -> PlattScaling
    {
        precondition(scores.count == labels.count, "Platt: scores and labels must have equal length")
        var a = 1.0, b = 0.0
        for _ in 0..<iterations {
            // [ga, gb, haa, hab, hbb, count]
            var sums = [0.0, 0.0, 0.0, 0.0, 0.0, Double(scores.count)]
            for i in scores.indices {
                let s = scores[i]
                let p = 1 / (1 + exp(-(a * s + b)))
                let r = p - labels[i], q = p * (1 - p)
                sums[0] += r * s; sums[1] += r
                sums[2] += q * s * s; sums[3] += q * s; sums[4] += q
            }
            try comm.allreduce(&sums)
            precondition(sums[5] > 0, "Platt: no scores on any rank")
            let ga = sums[0], gb = sums[1], haa = sums[2] + 1e-12, hab = sums[3], hbb = sums[4] + 1e-12
            let det = haa * hbb - hab * hab
            guard det > 0 else { break }
            let da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det
            a -= da; b -= db
            if abs(da) + abs(db) < 1e-10 { break }
        }
        return PlattScaling(a: a, b: b)
    }
}

extension IsotonicRegression {
    /// Isotonic regression of (score, label) pairs sorted GLOBALLY over the ranks (rank r holds
    /// an ascending run below rank r + 1's, e.g. `Evaluation.DistributedScores`): each rank
    /// pools adjacent violators in its run, the blocks (far fewer than the scores) are
    /// gathered in rank order, and the same pooling over the weighted blocks gives the global
    /// fit — pooling is order-free, so this equals the single-process fit. Equal on every rank.
    /// Collective.
    public static func fit(globallySorted scores: [Double], labels: [Double], comm: Communicator) throws
        -> IsotonicRegression
    {
        precondition(scores.count == labels.count, "Isotonic: scores and labels must have equal length")
        // Ties sit on one rank (they are one value), so pooling them locally is global.
        let tied = tiedBlocks(scores: scores, labels: labels, weights: [Double](repeating: 1, count: labels.count))
        let local = pool(means: tied.means, weights: tied.weights, centres: tied.centres)
        let means = try comm.allgatherv(local.means).values
        let weights = try comm.allgatherv(local.weights).values
        let centres = try comm.allgatherv(local.centres).values
        precondition(!means.isEmpty, "Isotonic: no scores on any rank")
        let global = pool(means: means, weights: weights, centres: centres)
        return IsotonicRegression(thresholds: global.centres, values: global.means)
    }
}

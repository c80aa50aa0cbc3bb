import Evaluation
import Foundation
import Linalg
import Testing
import _TestSupport

@Suite("Drift statistics")
struct DriftStatisticsTests {
    @Test("PSI by hand: quantile edges, bins, and 0.1·ln 1.5 for a 60/40 split of a 50/50 base")
    func psiByHand() {
        let base = (1...10).map(Double.init)
        #expect(PopulationStability.quantileEdges(base, bins: 4) == [3, 6, 8])
        #expect(PopulationStability.bin(2.9, edges: [3, 6, 8]) == 0)
        #expect(PopulationStability.bin(6, edges: [3, 6, 8]) == 2)
        #expect(PopulationStability.bin(100, edges: [3, 6, 8]) == 3)
        // Two bins split at 6: base 5 / 5, new 6 / 4.
        let p = PopulationStability(base: base, new: [1, 1, 1, 1, 1, 1, 7, 8, 9, 10], bins: 2)
        #expect(p.edges == [6])
        #expect(p.base == [0.5, 0.5] && p.new == [0.6, 0.4])
        #expect(abs(p.psi - 0.1 * log(1.5)) < 1e-12)
        #expect(PopulationStability(base: base, new: base, bins: 4).psi == 0)
        // Ties at a quantile merge bins rather than make empty ones.
        #expect(PopulationStability.quantileEdges([1, 1, 1, 1, 2], bins: 4) == [1])
    }

    @Test("Feature moments and drift by hand")
    func featureMomentsByHand() {
        let m = FeatureMoments(rows: [1, 10, 3, 10, 5, 10], names: ["x", "c"])
        #expect(m.count == 3 && m.mean == [3, 10])
        #expect(abs(m.std[0] - (8.0 / 3).squareRoot()) < 1e-12 && m.std[1] == 0)
        let n = FeatureMoments(rows: [2, 10, 4, 10, 6, 10], names: ["x", "c"])
        let drift = FeatureMoments.drift(base: m, new: n)
        #expect(abs(drift[0].meanShift - 1 / (8.0 / 3).squareRoot()) < 1e-12)
        #expect(abs(drift[0].stdRatio - 1) < 1e-12)
        #expect(drift[1].meanShift == 0 && drift[1].stdRatio == 1)
    }

    @Test("Categorical distributions and their PSI by hand; a shifted field is flagged, the others not")
    func categoricalByHand() {
        // Two fields: a = (1, 1, 2, 2), b = (7, 7, 7, 9).
        let d = CategoricalDistribution.measure(ids: [1, 7, 1, 7, 2, 7, 2, 9], names: ["a", "b"])
        #expect(d[0].values == [1, 2] && d[0].counts == [2, 2] && d[1].values == [7, 9] && d[1].counts == [3, 1])
        // a moves to (1, 1, 1, 2): ¾ / ¼ against ½ / ½, PSI = ¼·ln(3/2) + ¼·ln 2 = ¼·ln 3.
        let moved = CategoricalDistribution.measure(ids: [1, 7, 1, 7, 1, 7, 2, 9], names: ["a", "b"])
        #expect(abs(CategoricalDistribution.psi(base: d[0], new: moved[0]) - 0.25 * log(3.0)) < 1e-12)
        #expect(CategoricalDistribution.psi(base: d[1], new: moved[1]) == 0)
        let checks = DriftCheck.categories(base: d, new: moved, DriftThresholds())
        #expect(checks.filter(\.warning).map(\.subject) == ["a"])
    }

    @Test("Sequence-length buckets, attention entropy and embedding cosine by hand")
    func sequenceAttentionEmbeddingByHand() {
        #expect([0, 1, 2, 3, 4, 7, 8].map(SequenceLengths.bucket) == [0, 1, 2, 2, 3, 3, 4])
        let s = SequenceLengths(lengths: [0, 3, 3, 10])
        #expect(s.counts[0] == 1 && s.counts[2] == 2 && s.counts[4] == 1 && s.mean == 4 && s.longest == 10)
        // Row 1: uniform over 4 → 1; row 2: one-hot → 0; row 3: ½, ½ over 4 valid → ln 2 / ln 4 = ½;
        // row 4: one valid position → skipped.
        let w: [Float] = [0.25, 0.25, 0.25, 0.25, 1, 0, 0, 0, 0.5, 0.5, 0, 0, 1, 0, 0, 0]
        let mask = [Bool](repeating: true, count: 12) + [true, false, false, false]
        let e = AttentionEntropy(weights: w, mask: mask, heads: 1, length: 4)
        #expect(e.count == 3 && abs(e.mean - 0.5) < 1e-7)
        // Pin 1 unchanged (cos 1), pin 2 turned 90° (cos 0), pin 3 only in the base, 4 only new.
        let drift = EmbeddingDrift(
            baseIDs: [1, 2, 3], base: [1, 0, 0, 1, 1, 1], newIDs: [2, 1, 4], new: [1, 0, 2, 0, 5, 5], d: 2)
        #expect(drift.common == 2 && drift.baseOnly == 1 && drift.newOnly == 1 && abs(drift.meanCosine - 0.5) < 1e-12)
    }

    @Test("Reliability diagram at the predictions' quantiles and its ECE by hand")
    func reliabilityByHand() {
        // Two bins split at the median prediction 0.15: {0.05, 0.12} (mean 0.085, rate 0) and
        // {0.15, 0.95} (mean 0.55, rate 1); ECE = ½·0.085 + ½·0.45.
        let r = ReliabilityDiagram(probabilities: [0.05, 0.15, 0.12, 0.95], labels: [0, 1, 0, 1], bins: 2)
        #expect(r.bins.map(\.count) == [2, 2] && r.bins[0].upper == 0.15 && r.bins[1].lower == 0.15)
        #expect(abs(r.bins[0].meanPredicted - 0.085) < 1e-12 && r.bins[0].observedRate == 0)
        #expect(abs(r.bins[1].meanPredicted - 0.55) < 1e-12 && r.bins[1].observedRate == 1)
        #expect(abs(r.ece - 0.2675) < 1e-12)
        // Rare positives still spread over the bins: 10 bins of 100 predictions each below 0.1.
        let p = (0..<1_000).map { Double($0) / 10_000 }
        #expect(ReliabilityDiagram(probabilities: p, labels: p.map { _ in 0 }).bins.count == 10)
    }

    /// n scores ~ N(shift, 1) from a seed.
    func scores(seed: UInt64, shift: Double, n: Int = 5_000) -> [Double] {
        var r = RandomStream(seed: seed)
        return (0..<n).map { _ in r.normal() + shift }
    }

    /// History lengths of n users, up to 400 events.
    func lengths(seed: UInt64, n: Int = 2_000) -> [Int] {
        var r = RandomStream(seed: seed)
        return (0..<n).map { _ in Int(exp(r.uniform() * 6)) - 1 }
    }

    /// Attention of n rows over 8 events: softmax of scaled normal logits, or uniform.
    func attention(seed: UInt64, constant: Bool, n: Int = 500) -> (weights: [Float], mask: [Bool]) {
        var r = RandomStream(seed: seed)
        var w: [Float] = []
        for _ in 0..<n {
            let z = (0..<8).map { _ in constant ? 0 : r.normal() * 2.5 }
            let m = z.max()!, s = z.reduce(0) { $0 + exp($1 - m) }
            w += z.map { Float(exp($0 - m) / s) }
        }
        return (w, [Bool](repeating: true, count: n * 8))
    }

    @Test(
        "A planted drift (shifted scores, truncated sequences, constant attention) is flagged; an unchanged run is not")
    func plantedDriftFlagged() {
        let t = DriftThresholds()
        let base = scores(seed: 1, shift: 0)
        let same = DriftCheck.scores(task: "save", PopulationStability(base: base, new: scores(seed: 2, shift: 0)), t)
        let shifted = DriftCheck.scores(
            task: "save", PopulationStability(base: base, new: scores(seed: 2, shift: 0.5)), t)
        #expect(!same.warning && same.value < 0.02)
        #expect(shifted.warning)

        let history = SequenceLengths(lengths: lengths(seed: 3))
        let fresh = SequenceLengths(lengths: lengths(seed: 4))
        let truncated = SequenceLengths(lengths: lengths(seed: 4).map { min($0, 5) })
        #expect(!DriftCheck.sequenceLengths(subject: "history", base: history, new: fresh, t).warning)
        #expect(DriftCheck.sequenceLengths(subject: "history", base: history, new: truncated, t).warning)

        let a = attention(seed: 5, constant: false), b = attention(seed: 6, constant: false)
        let c = attention(seed: 6, constant: true)
        let baseEntropy = AttentionEntropy(weights: a.weights, mask: a.mask, heads: 1, length: 8)
        let unchanged = AttentionEntropy(weights: b.weights, mask: b.mask, heads: 1, length: 8)
        let flat = AttentionEntropy(weights: c.weights, mask: c.mask, heads: 1, length: 8)
        #expect(abs(flat.mean - 1) < 1e-6 && baseEntropy.mean < 0.8)
        #expect(!DriftCheck.attention(subject: "esu", base: baseEntropy, new: unchanged, t).warning)
        #expect(DriftCheck.attention(subject: "esu", base: baseEntropy, new: flat, t).warning)

        let rows = scores(seed: 7, shift: 0, n: 3_000).map(Float.init)
        let m = FeatureMoments(rows: rows, names: ["a", "b", "c"])
        let moved = FeatureMoments(rows: rows.enumerated().map { $0 % 3 == 1 ? $1 + 1 : $1 }, names: ["a", "b", "c"])
        #expect(DriftCheck.features(FeatureMoments.drift(base: m, new: m), t).allSatisfy { !$0.warning })
        let flagged = DriftCheck.features(FeatureMoments.drift(base: m, new: moved), t).filter(\.warning)
        #expect(flagged.map(\.subject) == ["b"])
    }
}

@Suite("Drift statistics under mpirun", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct DistributedDriftTests {
    @Test("PSI, moments, lengths, entropy and embedding drift: 1, 2 and 4 ranks equal one process")
    func sameOnEveryRankCount() throws {
        var lines: [String] = []
        for ranks in [1, 2, 4] {
            let r = try MPIRun.selftest(ranks: ranks, ["drift"])
            #expect(r.status == 0, "\(ranks) ranks: \(r.stderr)")
            let line = r.stdout.split(separator: "\n").first { $0.hasPrefix("SELFTEST DRIFT OK") }
            #expect(line != nil, "\(ranks) ranks: \(r.stdout)")
            lines.append(line.map { String($0).replacingOccurrences(of: "ranks=\(ranks) ", with: "") } ?? "")
        }
        #expect(Set(lines).count == 1, "\(lines)")
    }
}

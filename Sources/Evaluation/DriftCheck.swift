import Foundation

/// The limits past which a drift statistic between two runs becomes a warning.
public struct DriftThresholds: Sendable, Codable, Equatable {
    /// PSI of a task's predicted scores (0.2: between "moderate" and "act on it").
    public var scorePSI = 0.2
    /// A feature's |Δ mean| in units of the base's standard deviation.
    public var featureMeanShift = 0.5
    /// A feature's std ratio outside [1 / this, this].
    public var featureStdRatio = 2.0
    /// PSI of a categorical feature's values.
    public var categoryPSI = 0.2
    /// PSI of the sequence-length buckets.
    public var sequenceLengthPSI = 0.2
    /// |Δ| of the mean normalised attention entropy (0 … 1).
    public var attentionEntropyChange = 0.1
    /// Mean cosine between the two versions of the same pins below this.
    public var embeddingCosine = 0.9

    public init() {}
}

/// One statistic of a base run against a new run, with its threshold and verdict.
public struct DriftCheck: Sendable, Codable, Equatable {
    /// What is checked (`score_psi`, `feature_mean_shift`, `feature_std_ratio`,
    /// `feature_category_psi`, `sequence_length_psi`, `attention_entropy_change`, `embedding_cosine`).
    public var check: String
    /// Of what: a task, a feature, `history`, `esu`, `pinsage`.
    public var subject: String
    /// The statistic and its limit (a warning past it; for `embedding_cosine`, below it).
    public var value: Double, threshold: Double
    public var warning: Bool
    /// A sentence for the report: base and new figures.
    public var detail: String

    public init(check: String, subject: String, value: Double, threshold: Double, warning: Bool, detail: String) {
        self.check = check
        self.subject = subject
        self.value = value
        self.threshold = threshold
        self.warning = warning
        self.detail = detail
    }

    /// PSI of a task's predicted scores.
    public static func scores(task: String, _ p: PopulationStability, _ t: DriftThresholds) -> DriftCheck {
        DriftCheck(
            check: "score_psi", subject: task, value: p.psi, threshold: t.scorePSI, warning: p.psi > t.scorePSI,
            detail: "\(p.baseCount) base and \(p.newCount) new scores over \(p.edges.count + 1) base-quantile bins")
    }

    /// Mean shift and std ratio of every feature (two checks per feature).
    public static func features(_ drift: [FeatureMoments.Drift], _ t: DriftThresholds) -> [DriftCheck] {
        drift.flatMap { f in
            let means = String(format: "mean %.4g → %.4g, std %.4g → %.4g", f.baseMean, f.newMean, f.baseStd, f.newStd)
            return [
                DriftCheck(
                    check: "feature_mean_shift", subject: f.name, value: f.meanShift, threshold: t.featureMeanShift,
                    warning: f.meanShift > t.featureMeanShift, detail: means),
                DriftCheck(
                    check: "feature_std_ratio", subject: f.name, value: f.stdRatio, threshold: t.featureStdRatio,
                    warning: f.stdRatio > t.featureStdRatio || f.stdRatio < 1 / t.featureStdRatio, detail: means),
            ]
        }
    }

    /// PSI of each categorical feature present in both runs (by name).
    public static func categories(
        base: [CategoricalDistribution], new: [CategoricalDistribution], _ t: DriftThresholds
    ) -> [DriftCheck] {
        base.compactMap { b in
            guard let n = new.first(where: { $0.name == b.name }) else { return nil }
            let psi = CategoricalDistribution.psi(base: b, new: n)
            return DriftCheck(
                check: "feature_category_psi", subject: b.name, value: psi, threshold: t.categoryPSI,
                warning: psi > t.categoryPSI, detail: "\(b.values.count) → \(n.values.count) distinct values")
        }
    }

    /// PSI of the sequence-length buckets.
    public static func sequenceLengths(
        subject: String, base: SequenceLengths, new: SequenceLengths, _ t: DriftThresholds
    ) -> DriftCheck {
        let psi = SequenceLengths.psi(base: base, new: new)
        return DriftCheck(
            check: "sequence_length_psi", subject: subject, value: psi, threshold: t.sequenceLengthPSI,
            warning: psi > t.sequenceLengthPSI,
            detail: String(
                format: "mean length %.2f → %.2f, longest %d → %d", base.mean, new.mean, base.longest, new.longest))
    }

    /// Change of the mean normalised attention entropy.
    public static func attention(
        subject: String, base: AttentionEntropy, new: AttentionEntropy, _ t: DriftThresholds
    ) -> DriftCheck {
        let change = new.mean - base.mean
        return DriftCheck(
            check: "attention_entropy_change", subject: subject, value: change, threshold: t.attentionEntropyChange,
            warning: abs(change) > t.attentionEntropyChange,
            detail: String(
                format: "normalised entropy %.4f → %.4f (1 = uniform: the sequence no longer matters)", base.mean,
                new.mean))
    }

    /// Mean cosine between the two versions of the same pins.
    public static func embeddings(subject: String, _ e: EmbeddingDrift, _ t: DriftThresholds) -> DriftCheck {
        DriftCheck(
            check: "embedding_cosine", subject: subject, value: e.meanCosine, threshold: t.embeddingCosine,
            warning: e.common == 0 || e.meanCosine < t.embeddingCosine,
            detail: "\(e.common) pins in both versions, \(e.baseOnly) only in the base, \(e.newOnly) only in the new")
    }
}

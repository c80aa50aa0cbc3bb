import Foundation

/// A new night's drift checks against a base night: `mosaic monitor` writes it as
/// `monitor.json` and `monitor.html`.
public struct MonitorReport: Sendable, Codable, Equatable {
    public var base: String, new: String
    /// False on the first night (no base run): nothing was compared.
    public var baseFound: Bool
    public var thresholds: DriftThresholds
    public var checks: [DriftCheck]
    /// What could not be compared, and why (a missing summary, a model without attention).
    public var notes: [String]

    /// The checks past their threshold.
    public var warnings: [DriftCheck] { checks.filter(\.warning) }

    public init(
        base: String, new: String, baseFound: Bool, thresholds: DriftThresholds, checks: [DriftCheck], notes: [String]
    ) {
        self.base = base
        self.new = new
        self.baseFound = baseFound
        self.thresholds = thresholds
        self.checks = checks
        self.notes = notes
    }

    /// The ids of the monitor page's sections, in order.
    public static let sections = ["verdict", "scores", "features", "sequences", "attention", "embeddings"]

    /// The monitor page: the verdict, then one section per kind of check (warnings highlighted).
    public func html() -> String {
        var page = HTMLReport(title: "Mosaic monitor — \(new) against \(base)")
        page.section(id: "verdict", title: "Verdict")
        if !baseFound {
            page.paragraph("No base run at \(base) (the first night): nothing compared.")
        } else if warnings.isEmpty {
            page.paragraph("No warning: \(checks.count) checks within their thresholds.")
        } else {
            page.paragraph(
                "\(warnings.count) warning(s): "
                    + warnings.map { "\($0.check) of \($0.subject)" }.joined(separator: ", "),
                warning: true)
        }
        for note in notes { page.paragraph(note) }
        let groups: [(id: String, title: String, checks: Set<String>)] = [
            ("scores", "Predicted scores: PSI per task", ["score_psi"]),
            (
                "features", "Input features: mean and std drift, categorical PSI",
                ["feature_mean_shift", "feature_std_ratio", "feature_category_psi"]
            ),
            ("sequences", "Sequence lengths", ["sequence_length_psi"]),
            ("attention", "Attention entropy", ["attention_entropy_change"]),
            ("embeddings", "Embedding drift between versions", ["embedding_cosine"]),
        ]
        for g in groups {
            page.section(id: g.id, title: g.title)
            let rows = checks.filter { g.checks.contains($0.check) }
            if rows.isEmpty {
                page.paragraph("Not compared.")
                continue
            }
            if g.id == "scores" || g.id == "embeddings" {
                page.barChart(
                    title: g.id == "scores"
                        ? "PSI (threshold \(HTMLReport.format(thresholds.scorePSI)))" : "mean cosine",
                    labels: rows.map(\.subject), values: rows.map(\.value),
                    highlight: Set(rows.indices.filter { rows[$0].warning }))
            }
            page.table(
                headers: ["check", "of", "value", "threshold", "", "detail"],
                rows: rows.map {
                    [
                        $0.check, $0.subject, HTMLReport.format($0.value), HTMLReport.format($0.threshold),
                        $0.warning ? "WARNING" : "ok", $0.detail,
                    ]
                }, flagged: Set(rows.indices.filter { rows[$0].warning }))
        }
        return page.render()
    }
}

import Foundation

/// Every stage's offline figures for one night: `mosaic evaluate` writes it as `summary.json`
/// and as `report.html` (`EvaluationReport.html`).
public struct EvaluationSummary: Sendable, Codable, Equatable {
    /// The night's folder.
    public var run: String
    public var candidates: CandidatesSummary?
    public var ranker: RankerSummary?
    public var feed: FeedSummary?
    /// The summary files that were not found (their sections say so).
    public var missing: [String]

    public init(
        run: String, candidates: CandidatesSummary?, ranker: RankerSummary?, feed: FeedSummary?, missing: [String]
    ) {
        self.run = run
        self.candidates = candidates
        self.ranker = ranker
        self.feed = feed
        self.missing = missing
    }
}

/// The evaluation report of a night as a self-contained XHTML page.
public enum EvaluationReport {
    /// The ids of the report's sections, in order.
    public static let sections = ["retrieval", "ranker", "calibration", "feed-policies", "feed-shape"]

    /// The page: retrieval recall per channel, the ranker per task, its reliability diagrams,
    /// the feed policies beside the baselines and the oracle, the feeds' shape.
    public static func html(_ s: EvaluationSummary) -> String {
        var page = HTMLReport(title: "Mosaic evaluation — \(s.run)")
        if !s.missing.isEmpty {
            page.paragraph("Summaries not found: " + s.missing.joined(separator: ", "), warning: true)
        }
        retrieval(s.candidates, into: &page)
        ranker(s.ranker, into: &page)
        feed(s.feed, into: &page)
        return page.render()
    }

    static func retrieval(_ c: CandidatesSummary?, into page: inout HTMLReport) {
        page.section(id: "retrieval", title: "Retrieval: recall per channel")
        guard let c, !c.channels.isEmpty, let last = c.sizes.indices.last else {
            page.paragraph("No retrieval evaluation (feed candidates ran without a hold-out on a generated world).")
            return
        }
        page.paragraph(
            "\(c.users) users, \(HTMLReport.format(c.candidatesPerUser)) candidates per user; the last \(c.holdoutDays) day(s) held out. Oracle set: each user's \(c.oracleCount) pins with the highest true save probability."
        )
        page.barChart(
            title: "oracle-set recall@\(c.sizes[last])", labels: c.channels.map(\.channel),
            values: c.channels.map { $0.oracleRecall[last] },
            highlight: Set(c.channels.indices.filter { c.channels[$0].channel.hasPrefix("popularity") }))
        page.table(
            headers: ["channel"] + c.sizes.map { "oracle recall@\($0)" } + c.sizes.map { "held-out saves recall@\($0)" }
                + ["candidates / user"],
            rows: c.channels.map { ch in
                [ch.channel] + (ch.oracleRecall + ch.savedRecall).map { HTMLReport.format($0) }
                    + [HTMLReport.format(ch.candidatesPerUser)]
            })
    }

    static func ranker(_ r: RankerSummary?, into page: inout HTMLReport) {
        page.section(id: "ranker", title: "Ranker: validation metrics per task")
        if let r {
            page.paragraph(
                "\(r.trainRows) training and \(r.validRows) validation impressions; best epoch \(r.bestEpoch).")
            page.table(
                headers: ["task", "AUC", "GAUC", "logloss", "ECE (calibrated)", "train positive rate"],
                rows: r.tasks.map {
                    [
                        $0.task, HTMLReport.format($0.auc), HTMLReport.format($0.gauc), HTMLReport.format($0.logloss),
                        HTMLReport.format($0.reliability?.ece), HTMLReport.format($0.trainPositiveRate),
                    ]
                })
            if let f = r.features {
                page.table(
                    headers: ["dense feature (training rows)", "mean", "std"],
                    rows: f.names.indices.map {
                        [f.names[$0], HTMLReport.format(f.mean[$0]), HTMLReport.format(f.std[$0])]
                    })
            }
        } else {
            page.paragraph("No ranker summary.")
        }
        page.section(id: "calibration", title: "Calibration: reliability diagrams")
        let diagrams = (r?.tasks ?? []).compactMap { t in t.reliability.map { (t.task, $0) } }
        if diagrams.isEmpty { page.paragraph("No calibrated task.") }
        for (task, d) in diagrams {
            page.reliabilityChart(title: "\(task): ECE \(HTMLReport.format(d.ece))", d)
        }
    }

    static func feed(_ f: FeedSummary?, into page: inout HTMLReport) {
        page.section(id: "feed-policies", title: "Feed policies under the world's truth")
        guard let f, !f.policies.isEmpty else {
            page.paragraph("No feed evaluation (feed rank ran without a hold-out on a generated world).")
            page.section(id: "feed-shape", title: "Diversity, coverage, freshness")
            page.paragraph("Not measured.")
            return
        }
        let marked = Set(
            f.policies.indices.filter {
                f.policies[$0].policy.contains("published") || f.policies[$0].policy.hasPrefix("oracle")
            })
        page.paragraph(
            "\(f.users) users, feeds of \(f.k), the last \(f.holdoutDays) day(s) held out; baselines (popularity, each channel alone, the merged list) beside the ranked feeds and the oracle (the ceiling)."
        )
        if f.policies.contains(where: { $0.expectedSaves != nil }) {
            page.barChart(
                title: "expected saves per user (truth)", labels: f.policies.map(\.policy),
                values: f.policies.map { $0.expectedSaves ?? 0 }, highlight: marked)
        }
        page.table(
            headers: [
                "policy", "users with held-out saves", "HR@\(f.k)", "recall@\(f.k)", "NDCG@\(f.k)",
                "expected saves / user", "oracle-set recall@\(f.k)",
            ],
            rows: f.policies.map {
                [
                    $0.policy, "\($0.usersWithSaves)", HTMLReport.format($0.hitRate), HTMLReport.format($0.recall),
                    HTMLReport.format($0.ndcg), HTMLReport.format($0.expectedSaves), HTMLReport.format($0.oracleRecall),
                ]
            }, flagged: marked)
        page.section(id: "feed-shape", title: "Diversity, coverage, freshness")
        let shaped = f.policies.filter { $0.coverage != nil }
        if shaped.isEmpty { page.paragraph("Not measured.") }
        page.table(
            headers: ["policy", "categories / feed", "intra-list cosine", "catalogue coverage", "fresh share"],
            rows: shaped.map {
                [
                    $0.policy, HTMLReport.format($0.categoriesPerFeed), HTMLReport.format($0.intraListCosine),
                    HTMLReport.format($0.coverage), HTMLReport.format($0.freshShare),
                ]
            })
        if !shaped.isEmpty {
            page.barChart(
                title: "catalogue coverage", labels: shaped.map(\.policy), values: shaped.map { $0.coverage ?? 0 })
        }
    }
}

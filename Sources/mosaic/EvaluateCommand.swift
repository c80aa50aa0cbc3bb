import ArgumentParser
import Evaluation
import Foundation

/// `mosaic evaluate RUN`: the night's report (report.html) and its figures (summary.json).
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Write a night's evaluation report (report.html) and its numbers (summary.json).",
        discussion: """
            Reads the summaries the stages wrote into the night's folder RUN: candidates/summary.json \
            (feed candidates: recall per channel), ranker.summary.json (ranker train --data: AUC, GAUC, \
            logloss and reliability per task) and feeds/summary.json (feed rank: every policy beside \
            the baselines and the oracle under the world's truth, diversity, coverage, freshness). \
            Writes report.html (self-contained XHTML with inline SVG: no script, font or network) \
            and summary.json (the same numbers) into --out (default RUN). A missing summary is named \
            in the report and its section says so; --strict makes it an error. Not an MPI job: \
            one process, small files (docs/report.md).
            """)

    @Argument(
        help: ArgumentHelp(
            "The night's folder (the pipeline's runs/<night>, or any folder with the stages' outputs).",
            valueName: "RUN"))
    var night: String
    @Option(help: "Summary of feed candidates (default RUN/candidates/summary.json).") var candidates: String?
    @Option(help: "Summary of ranker train (default RUN/ranker.summary.json).") var ranker: String?
    @Option(help: "Summary of feed rank (default RUN/feeds/summary.json).") var feeds: String?
    @Option(help: "Folder for report.html and summary.json (default RUN).") var out: String?
    @Flag(help: "Fail when a summary is missing.") var strict = false

    func run() throws {
        let paths = (
            candidates: candidates ?? night + "/candidates/summary.json",
            ranker: ranker ?? night + "/ranker.summary.json",
            feeds: feeds ?? night + "/feeds/summary.json"
        )
        guard FileManager.default.fileExists(atPath: night) else {
            throw ValidationError("\(night): no such folder")
        }
        let c = try StageSummary.read(CandidatesSummary.self, from: paths.candidates)
        let r = try StageSummary.read(RankerSummary.self, from: paths.ranker)
        let f = try StageSummary.read(FeedSummary.self, from: paths.feeds)
        let missing = [(paths.candidates, c == nil), (paths.ranker, r == nil), (paths.feeds, f == nil)]
            .filter(\.1).map(\.0)
        if strict && !missing.isEmpty {
            throw ValidationError("missing summaries: \(missing.joined(separator: ", "))")
        }
        let summary = EvaluationSummary(run: night, candidates: c, ranker: r, feed: f, missing: missing)
        let folder = out ?? night
        try StageSummary.write(summary, to: folder + "/summary.json")
        try Data(EvaluationReport.html(summary).utf8).write(
            to: URL(fileURLWithPath: folder + "/report.html"), options: .atomic)
        print(EvaluateCommand.line(summary, folder: folder))
    }

    /// The one-line result: the headline figures and where the report is.
    static func line(_ s: EvaluationSummary, folder: String) -> String {
        let published = s.feed?.policies.first { $0.policy.contains("published") }
        let oracle = s.feed?.policies.first { $0.policy.hasPrefix("oracle") }
        let save = s.ranker?.tasks.first { $0.task == "save" }
        return
            "EVALUATE run=\(s.run) save_auc=\(HTMLReport.format(save?.auc)) save_gauc=\(HTMLReport.format(save?.gauc))"
            + " expected_saves=\(HTMLReport.format(published?.expectedSaves)) oracle=\(HTMLReport.format(oracle?.expectedSaves))"
            + " missing=\(s.missing.count) report=\(folder)/report.html"
    }
}

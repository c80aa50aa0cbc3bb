import Evaluation
import Foundation

#if canImport(FoundationXML)
    import FoundationXML
#endif
import Testing
import _TestSupport

/// Element names, section ids and SVG elements of an XML document (nil when it does not parse).
final class XMLOutline: NSObject, XMLParserDelegate {
    var sections: [String] = [], svgElements = 0, svgRoots = 0, elements: Set<String> = []

    static func parse(_ data: Data) -> XMLOutline? {
        let outline = XMLOutline()
        let parser = XMLParser(data: data)
        parser.shouldProcessNamespaces = true
        parser.delegate = outline
        return parser.parse() ? outline : nil
    }

    func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        elements.insert(name)
        if name == "section", let id = attributes["id"] { sections.append(id) }
        if namespaceURI == "http://www.w3.org/2000/svg" {
            svgElements += 1
            if name == "svg" { svgRoots += 1 }
        }
    }
}

/// Summaries of a small night, as the stages write them.
enum SampleNight {
    static let reliability = ReliabilityDiagram(
        probabilities: (0..<200).map { Double($0) / 200 }, labels: (0..<200).map { $0 % 3 == 0 ? 1 : 0 })

    static let candidates = CandidatesSummary(
        users: 150, candidatesPerUser: 812.5, holdoutDays: 1, sizes: [100, 500], oracleCount: 100,
        channels: [
            .init(channel: "content", oracleRecall: [0.12, 0.3], savedRecall: [0.05, 0.1], candidatesPerUser: 400),
            .init(channel: "merged", oracleRecall: [0.2, 0.5], savedRecall: [0.08, 0.2], candidatesPerUser: 812.5),
            .init(
                channel: "popularity (most saved, baseline)", oracleRecall: [0.02, 0.06], savedRecall: [0.01, 0.03],
                candidatesPerUser: 500),
        ])

    static let ranker = RankerSummary(
        trainRows: 9000, validRows: 1200, bestEpoch: 2,
        tasks: [
            .init(task: "save", auc: 0.71, gauc: 0.64, logloss: 0.21, reliability: reliability),
            .init(task: "closeup", auc: 0.68, gauc: 0.6, logloss: 0.4, reliability: reliability),
        ],
        features: FeatureMoments(
            names: ["log_pin_age_days", "pin_save_rate"], count: 9000, mean: [1.5, 0.02], std: [0.7, 0.01]),
        historyLengths: SequenceLengths(lengths: [0, 3, 8, 40, 41, 100]), attention: nil)

    static var feed: FeedSummary {
        var published = FeedSummary.Policy(
            policy: "ranked + diversity re-rank (published)", usersWithSaves: 90, hitRate: 0.3, recall: 0.1,
            expectedSaves: 0.9, oracleRecall: 0.15)
        published.categoriesPerFeed = 11
        published.intraListCosine = 0.21
        published.coverage = 0.4
        published.freshShare = 0.1
        return FeedSummary(
            users: 150, k: 50, holdoutDays: 1,
            policies: [
                .init(
                    policy: "popularity (most saved)", usersWithSaves: 90, hitRate: 0.1, recall: 0.02,
                    expectedSaves: 0.4, oracleRecall: 0.03),
                published,
                .init(
                    policy: "oracle (true save probability)", usersWithSaves: 90, hitRate: 0.5, recall: 0.2,
                    expectedSaves: 2.1, oracleRecall: 1),
            ])
    }

    /// A night folder holding the three summaries where the stages put them.
    static func write(to night: URL) throws {
        try StageSummary.write(candidates, to: night.appendingPathComponent("candidates/summary.json").path)
        try StageSummary.write(ranker, to: night.appendingPathComponent("ranker.summary.json").path)
        try StageSummary.write(feed, to: night.appendingPathComponent("feeds/summary.json").path)
    }
}

/// The headless Chromium of this machine, if any.
let chromium: String? = {
    let folders = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":")
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for folder in folders where FileManager.default.isExecutableFile(atPath: "\(folder)/\(name)") {
            return "\(folder)/\(name)"
        }
    }
    return nil
}()

@Suite("mosaic evaluate: report.html and summary.json", .serialized)
struct EvaluateReportTests {
    @Test(
        "The report is well-formed XHTML with inline SVG, holds every section and no script; summary.json has the same numbers"
    )
    func reportParsesAndHoldsEverySection() throws {
        let night = try MPIRun.temporaryDirectory("evaluate")
        try SampleNight.write(to: night)
        let r = try MPIRun.mosaicSingleton(["evaluate", night.path])
        try #require(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("EVALUATE") && r.stdout.contains("save_auc=0.7100"))
        let html = try Data(contentsOf: night.appendingPathComponent("report.html"))
        let outline = try #require(XMLOutline.parse(html), "report.html is not well-formed XML")
        #expect(outline.sections == EvaluationReport.sections)
        // Bar charts (retrieval, expected saves, coverage) and two reliability diagrams.
        #expect(outline.svgRoots == 5 && outline.svgElements > 40)
        #expect(outline.elements.isDisjoint(with: ["script", "link", "img", "iframe", "object"]))
        let text = String(decoding: html, as: UTF8.self)
        #expect(!text.contains("src=") && !text.contains("@import") && !text.contains("url("))
        for name in ["content", "merged", "popularity (most saved, baseline)", "oracle (true save probability)"] {
            #expect(text.contains(name), "\(name) missing from the report")
        }
        let summary = try #require(
            try StageSummary.read(EvaluationSummary.self, from: night.appendingPathComponent("summary.json").path))
        #expect(summary.candidates == SampleNight.candidates && summary.ranker == SampleNight.ranker)
        #expect(summary.feed == SampleNight.feed && summary.missing.isEmpty)
    }

    @Test("A missing summary is named and its section says so; --strict fails")
    func missingSummary() throws {
        let night = try MPIRun.temporaryDirectory("evaluate-missing")
        try StageSummary.write(SampleNight.ranker, to: night.appendingPathComponent("ranker.summary.json").path)
        let r = try MPIRun.mosaicSingleton(["evaluate", night.path])
        try #require(r.status == 0, "\(r.stderr)")
        let html = try Data(contentsOf: night.appendingPathComponent("report.html"))
        let outline = try #require(XMLOutline.parse(html))
        #expect(outline.sections == EvaluationReport.sections)
        #expect(String(decoding: html, as: UTF8.self).contains("candidates/summary.json"))
        #expect(try MPIRun.mosaicSingleton(["evaluate", night.path, "--strict"]).status != 0)
    }

    @Test(
        "The report renders in headless Chromium with every section",
        .enabled(if: chromium != nil, "Chromium is not installed (apt-get install chromium): render check skipped"))
    func rendersInChromium() throws {
        let night = try MPIRun.temporaryDirectory("evaluate-chromium")
        try SampleNight.write(to: night)
        try #require(try MPIRun.mosaicSingleton(["evaluate", night.path]).status == 0)
        let page = night.appendingPathComponent("report.html")
        let r = try MPIRun.run(
            chromium!,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--user-data-dir=\(night.appendingPathComponent("profile").path)", "--dump-dom", page.absoluteString,
            ], timeout: 120)
        try #require(r.status == 0, "\(r.stderr)")
        for id in EvaluationReport.sections { #expect(r.stdout.contains("id=\"\(id)\""), "\(id) not rendered") }
        #expect(r.stdout.contains("<svg") && r.stdout.contains("<circle"))
    }
}

@Suite("mosaic monitor", .serialized)
struct MonitorCommandTests {
    @Test("First night: no base run, exit 0 even with --fail-on-warning")
    func firstNight() throws {
        let night = try MPIRun.temporaryDirectory("monitor-first")
        try SampleNight.write(to: night)
        let r = try MPIRun.mosaicSingleton(["monitor", night.path + "/no-such-night", night.path, "--fail-on-warning"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("not found (the first night)"))
        let report = try #require(
            try StageSummary.read(MonitorReport.self, from: night.appendingPathComponent("monitor.json").path))
        #expect(!report.baseFound && report.checks.isEmpty)
    }

    @Test("An unchanged night passes; a truncated history and a shifted feature warn and fail with --fail-on-warning")
    func plantedDriftFails() throws {
        let base = try MPIRun.temporaryDirectory("monitor-base"), new = try MPIRun.temporaryDirectory("monitor-new")
        try SampleNight.write(to: base)
        try SampleNight.write(to: new)
        let same = try MPIRun.mosaicSingleton(["monitor", base.path, new.path, "--fail-on-warning"])
        #expect(same.status == 0, "\(same.stdout) \(same.stderr)")
        #expect(same.stdout.contains("warnings=0"))
        var drifted = SampleNight.ranker
        drifted.historyLengths = SequenceLengths(lengths: [0, 3, 3, 3, 3, 3])
        drifted.features!.mean[1] = 0.03
        try StageSummary.write(drifted, to: new.appendingPathComponent("ranker.summary.json").path)
        let r = try MPIRun.mosaicSingleton(["monitor", base.path, new.path, "--fail-on-warning"])
        #expect(r.status == 3, "\(r.stdout) \(r.stderr)")
        let report = try #require(
            try StageSummary.read(MonitorReport.self, from: new.appendingPathComponent("monitor.json").path))
        #expect(Set(report.warnings.map(\.subject)) == ["user history", "pin_save_rate"])
        let outline = try #require(XMLOutline.parse(try Data(contentsOf: new.appendingPathComponent("monitor.html"))))
        #expect(outline.sections == MonitorReport.sections)
        // Reported, but not failed, without the flag.
        #expect(try MPIRun.mosaicSingleton(["monitor", base.path, new.path]).status == 0)
    }
}

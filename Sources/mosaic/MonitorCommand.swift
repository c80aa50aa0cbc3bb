import ArgumentParser
import Artifacts
import Collective
import Evaluation
import Foundation
import Models

/// `mosaic monitor BASE_RUN NEW_RUN`: a night's drift against the previous one.
struct MonitorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "monitor",
        abstract:
            "Compare a night with a base night: score PSI, feature drift, sequence lengths, attention, embeddings.",
        discussion: """
            BASE_RUN and NEW_RUN are nights' folders (the pipeline's runs/<night>; BASE_RUN is usually \
            <root>/current, the last published night). Compares, each against its threshold: the PSI of \
            the ranked candidates' calibrated P(save) and P(closeup) (feeds/, over the base's deciles; \
            the feeds' shards are read by the ranks and the bins summed over them); the mean and std of \
            every dense feature of the ranker's training rows and the users' history lengths \
            (ranker.summary.json of `ranker train --data`); the ESU attention's entropy when the ranker \
            has one; the mean cosine of the same pins' PinSage vectors (embeddings/, routed to owner \
            ranks). Writes monitor.json and monitor.html into --out (default NEW_RUN). Exits 0 when \
            BASE_RUN does not exist (the first night); with --fail-on-warning exits 3 on any warning.
            """)

    @Argument(help: "The base night's folder (e.g. <root>/current).") var baseRun: String
    @Argument(help: "The new night's folder.") var newRun: String
    @Option(help: "Folder for monitor.json and monitor.html (default NEW_RUN).") var out: String?
    @Flag(inversion: .prefixedNo, help: "Exit 3 when a check is past its threshold.") var failOnWarning = false
    @Option(help: "Warn when a task's score PSI exceeds this.") var psiThreshold = DriftThresholds().scorePSI
    @Option(help: "Warn when a feature's mean moves by more than this many base std.")
    var featureShift = DriftThresholds().featureMeanShift
    @Option(help: "Warn when the pins' mean cosine between versions is below this.")
    var embeddingCosine = DriftThresholds().embeddingCosine

    func run() throws {
        var warned = false
        Communicator.runJob { comm in
            var t = DriftThresholds()
            t.scorePSI = psiThreshold
            t.featureMeanShift = featureShift
            t.embeddingCosine = embeddingCosine
            let folder = out ?? newRun
            guard FileManager.default.fileExists(atPath: baseRun) else {
                let report = MonitorReport(
                    base: baseRun, new: newRun, baseFound: false, thresholds: t, checks: [], notes: [])
                try MonitorCommand.write(report, to: folder, comm: comm)
                if comm.isRoot { print("MONITOR base=\(baseRun) not found (the first night): nothing to compare") }
                return
            }
            var checks: [DriftCheck] = [], notes: [String] = []
            let base = URL(fileURLWithPath: baseRun), new = URL(fileURLWithPath: newRun)
            if let b = try MonitorCommand.scores(base.appendingPathComponent("feeds"), comm: comm),
                let n = try MonitorCommand.scores(new.appendingPathComponent("feeds"), comm: comm)
            {
                for task in ["save", "closeup"] {
                    let psi = try PopulationStability(base: b[task]!, new: n[task]!, bins: 10, comm: comm)
                    checks.append(.scores(task: task, psi, t))
                }
            } else {
                notes.append("Scores not compared: a feeds run is missing.")
            }
            let rb = try StageSummary.read(RankerSummary.self, from: baseRun + "/ranker.summary.json")
            let rn = try StageSummary.read(RankerSummary.self, from: newRun + "/ranker.summary.json")
            if let rb, let rn {
                if let fb = rb.features, let fn = rn.features {
                    checks += DriftCheck.features(FeatureMoments.drift(base: fb, new: fn), t)
                }
                if let cb = rb.categorical, let cn = rn.categorical {
                    checks += DriftCheck.categories(base: cb, new: cn, t)
                }
                if let hb = rb.historyLengths, let hn = rn.historyLengths {
                    checks.append(.sequenceLengths(subject: "user history", base: hb, new: hn, t))
                }
                if let ab = rb.attention, let an = rn.attention {
                    checks.append(.attention(subject: "esu", base: ab, new: an, t))
                } else {
                    notes.append("Attention entropy not compared: the ranker has no sequence attention (ESU).")
                }
            } else {
                notes.append("Features and sequence lengths not compared: a ranker.summary.json is missing.")
            }
            if let drift = try MonitorCommand.embeddings(base, new, comm: comm) {
                checks.append(.embeddings(subject: "pinsage", drift, t))
            } else {
                notes.append("Embeddings not compared: an embeddings run is missing or the widths differ.")
            }
            let report = MonitorReport(
                base: baseRun, new: newRun, baseFound: true, thresholds: t, checks: checks, notes: notes)
            try MonitorCommand.write(report, to: folder, comm: comm)
            warned = !report.warnings.isEmpty
            if comm.isRoot {
                for w in report.warnings {
                    print(
                        "WARNING \(w.check) of \(w.subject): \(HTMLReport.format(w.value)) (threshold \(w.threshold)); \(w.detail)"
                    )
                }
                print(
                    "MONITOR base=\(baseRun) new=\(newRun) checks=\(checks.count) warnings=\(report.warnings.count) report=\(folder)/monitor.html"
                )
            }
        }
        if warned && failOnWarning { throw ExitCode(3) }
    }
}

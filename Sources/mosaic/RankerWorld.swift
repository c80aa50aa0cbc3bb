import ArgumentParser
import Collective
import Evaluation
import Events
import Foundation
import Learning
import Ranking

/// `mosaic ranker world`: trains ranker variants on the synthetic world (where the true
/// probabilities are known) and prints AUC/GAUC per task beside the oracle's, ECE after
/// calibration, and the position-bias check.
struct RankerWorld: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "world",
        abstract: "Train ranker variants on the synthetic world; compare with the oracle (true probabilities).",
        discussion: """
            Variants (comma-separated): lr (logistic regression with the mean-pooled last \
            --short-length events: history × candidate crosses and mean history content), lr-nohist \
            (the same without history), dcn-nopos (no position tower), dcn, dcn+din, \
            dcn+din+sim-hard, dcn+din+sim-soft, dcn+sim-hard, dcn+sim-soft. Examples are the world's \
            impressions (labels save and closeup); the last 2 days are test, the 2 before valid. \
            Position-bias check: Pearson correlation of each score with the logged position on \
            test; the position-free truth is P(closeup)/examination(position). A ranker's \
            position-nulled scores should correlate with position no more than that truth. \
            Features are taken as of the feed request (--feature-time request, the session's first \
            impression); --feature-time impression takes them at each slot's display time, which \
            lets the same feed's earlier engagements into the DIN/SIM sequences and leaks the slot.
            """)

    @Option(help: "World users.") var users = 1_000
    @Option(help: "World days.") var days = 14
    @Option(help: "Initial pins.") var pins = 6_000
    @Option(help: "Fresh pins per day.") var freshPins = 300
    @Option(help: "World seed.") var worldSeed: UInt64 = 42
    @Option(help: "Variants to train, comma-separated.") var variants = "lr,dcn-nopos,dcn,dcn+din+sim-hard"
    @Option(help: "Maximum epochs.") var epochs = 8
    @Option(help: "Global batch size.") var batchSize = 1024
    @Option(help: "Adam learning rate.") var lr = 2e-3
    @Option(help: "Adam learning rate of the lr variants (a linear model wants a larger step).") var baselineLr = 2e-2
    @Option(help: "Calibration per task: platt, isotonic.") var calibration = "platt"
    @Option(help: "Final-score weights w_save,w_closeup.") var taskWeights = "1,0.25"
    @Option(help: "SIM top-K (GSU).") var simK = 50
    @Option(help: "Short-sequence length (DIN).") var shortLength = 20
    @Option(help: "Cap steps per epoch (tests; 0 = whole epoch).") var maxStepsPerEpoch = 0
    @Option(help: "Save each variant's model as <prefix><variant>.h5.") var outPrefix: String?
    @Option(help: "Dropout after the cross network.") var dropout = 0.1
    @Option(help: "Per-occurrence L2 on embedding rows.") var embeddingL2 = 0.0
    @Option(help: "Embedding width.") var dim = 16
    @Option(
        help:
            "Time features are taken at: request (the feed request = the session's first impression; what serving knows) or impression (each slot's display time: leaks the slot through the same feed's earlier engagements)."
    )
    var featureTime = "request"

    static func pearson(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count)
        let ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for i in a.indices {
            sab += (a[i] - ma) * (b[i] - mb); saa += (a[i] - ma) * (a[i] - ma); sbb += (b[i] - mb) * (b[i] - mb)
        }
        return sab / max((saa * sbb).squareRoot(), 1e-300)
    }

    func run() throws {
        Communicator.runJob { comm in
            var wp = WorldParameters()
            wp.users = users; wp.days = days; wp.initialPins = pins; wp.freshPinsPerDay = freshPins
            wp.seed = worldSeed
            let t0 = Date()
            guard let ft = WorldExamples.FeatureTime(rawValue: featureTime) else {
                throw ValidationError("--feature-time: '\(featureTime)', expected request or impression")
            }
            let world = WorldExamples.build(wp, featureTime: ft)
            let weights = try taskWeights.split(separator: ",").map {
                guard let v = Double($0) else { throw ValidationError("--task-weights: '\($0)' is not a number") }
                return v
            }
            comm.log(
                "world: \(world.train.count) train, \(world.valid.count) valid, \(world.test.count) test impressions "
                    + String(
                        format: "(%.1f s); save rate %.4f, closeup rate %.4f", Date().timeIntervalSince(t0),
                        world.test.labels[0].reduce(0, +) / Float(world.test.count),
                        world.test.labels[1].reduce(0, +) / Float(world.test.count)))
            let test = world.test
            let labels = test.labels.map { $0.map { $0 > 0.5 } }
            let position = world.testPositions.map(Double.init)
            var rows: [String] = []
            var biasRows: [String] = []
            func row(_ name: String, _ probs: [[Double]], ranking: [[Double]]) {
                var cells = [name]
                for k in 0..<2 {
                    let auc = ClassificationMetrics.auc(scores: ranking[k], labels: labels[k]) ?? .nan
                    let gauc =
                        ClassificationMetrics.gauc(scores: ranking[k], labels: labels[k], groups: test.groups).value
                        ?? .nan
                    cells += [String(format: "%.4f", auc), String(format: "%.4f", gauc)]
                }
                for k in 0..<2 {
                    cells.append(
                        String(format: "%.4f", ClassificationMetrics.ece(probabilities: probs[k], labels: labels[k])))
                }
                let final = (0..<test.count).map { i in weights[0] * probs[0][i] + weights[1] * probs[1][i] }
                cells.append(
                    String(format: "%.4f", ClassificationMetrics.auc(scores: final, labels: labels[0]) ?? .nan))
                rows.append("| " + cells.joined(separator: " | ") + " |")
            }
            let oracle = world.oracle.map { $0.map(Double.init) }
            row("oracle (true probabilities)", oracle, ranking: oracle)
            let relevance = world.relevance.map(Double.init)
            biasRows.append(
                String(format: "| oracle P(closeup) (with position effect) | %.4f |", Self.pearson(oracle[1], position))
            )
            biasRows.append(
                String(
                    format: "| oracle relevance P(closeup)/exam(position) (the truth) | %.4f |",
                    Self.pearson(relevance, position)))

            for variant in variants.split(separator: ",").map(String.init) {
                var c = RankerConfig()
                c.fields = WorldExamples.fieldNames.count
                c.dim = dim; c.tableRows = 1 << 15; c.hashIDs = true
                c.denseWidth = WorldExamples.denseNames.count; c.contentWidth = wp.dimension
                c.crossLayers = 2; c.experts = 3; c.expertWidths = [128, 64]; c.towerWidths = [32, 1]
                c.tasks = ["save", "closeup"]; c.taskWeights = weights
                c.positionBuckets = 32; c.dropout = dropout; c.embeddingL2 = embeddingL2
                c.candidateField = 1
                c.seed = 7
                var parts = Set(variant.split(separator: "+").map(String.init))
                switch true {
                case parts.remove("lr") != nil:
                    c.architecture = .logistic; c.positionBuckets = 0; c.shortLength = shortLength
                case parts.remove("lr-nohist") != nil: c.architecture = .logistic; c.positionBuckets = 0
                case parts.remove("dcn-nopos") != nil: c.positionBuckets = 0
                case parts.remove("dcn") != nil: break
                default: throw ValidationError("variant \(variant): must start with lr, lr-nohist, dcn or dcn-nopos")
                }
                if parts.remove("din") != nil { c.shortLength = shortLength }
                if parts.remove("sim-hard") != nil { c.simK = simK; c.simSearch = "hard" }
                if parts.remove("sim-soft") != nil { c.simK = simK; c.simSearch = "soft" }
                guard parts.isEmpty else {
                    throw ValidationError("variant \(variant): unknown parts \(parts.sorted())")
                }
                var options = RankerTrainingOptions()
                options.epochs = epochs; options.batchSize = batchSize
                options.learningRate = c.architecture == .logistic ? baselineLr : lr
                options.patience = 2; options.calibration = calibration; options.maxStepsPerEpoch = maxStepsPerEpoch
                options.seed = 11
                let started = Date()
                let outcome = try RankerTrainer.train(
                    config: c, train: world.train, valid: world.valid, options: options, comm: comm,
                    save: outPrefix.map { "\($0)\(variant).h5" })
                let logits = try scoreAny(outcome.model, test, comm: comm)
                let probs = logits.enumerated().map { k, z in
                    z.map { outcome.calibrators[c.tasks[k]]?(Double($0)) ?? Double(Float.sigmoid($0)) }
                }
                row(variant, probs, ranking: logits.map { $0.map(Double.init) })
                let nulled = Self.pearson(logits[1].map(Double.init), position)
                var line = String(format: "| %@: closeup logit, position nulled | %.4f |", variant, nulled)
                if let m = outcome.model as? RankerModel<Float>, c.positionBuckets > 0 {
                    var withPosition = logits[1]
                    var s = 0
                    while s < test.count {
                        let e = min(test.count, s + 8192)
                        let b: RankerBatch<Float> = test.batch(s..<e, firstIndex: s, config: c, table: m.table)
                        let p = m.positionLogits(b)[1]
                        for i in s..<e { withPosition[i] += p[i - s] }
                        s = e
                    }
                    line += String(
                        format: "\n| %@: closeup logit + position tower (as trained) | %.4f |", variant,
                        Self.pearson(withPosition.map(Double.init), position))
                }
                biasRows.append(line)
                comm.log(
                    String(
                        format: "%@: best epoch %d, %.0f s, %.0f examples/s", variant, outcome.bestEpoch,
                        Date().timeIntervalSince(started), outcome.examplesPerSecond))
            }
            if comm.isRoot {
                print(
                    "RANKER WORLD ranks=\(comm.size) users=\(users) days=\(days) train=\(world.train.count) test=\(test.count) feature-time=\(featureTime)"
                )
                print("")
                print(
                    "| model (test, last 2 days) | save AUC | save GAUC | closeup AUC | closeup GAUC | save ECE | closeup ECE | final-score AUC (save) |"
                )
                print("|---|---|---|---|---|---|---|---|")
                rows.forEach { print($0) }
                print("")
                print(
                    "ECE after \(calibration) calibration fitted on valid (oracle: raw true probabilities). Final score = \(weights[0])·P(save) + \(weights[1])·P(closeup)."
                )
                print("")
                print("| position-bias check (test) | Pearson corr. with logged position |")
                print("|---|---|")
                biasRows.forEach { print($0) }
            }
        }
    }
}

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
            dcn+din+sim-hard, dcn+din+sim-soft, dcn+sim-hard, dcn+sim-soft, dcn+transformer (the \
            Transformer over the last --transformer-length events, the candidate as the final token; \
            its tokens hold the pins' content embeddings), with +ids (tokens without content), +notime \
            (without the time bucket) or +skips (histories with skip events: impressions without \
            engagement). Examples are the world's \
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
    @Option(help: "Transformer sequence length.") var transformerLength = 50
    @Option(help: "Transformer blocks.") var transformerLayers = 1
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
            var skipWorld: WorldExamples? = nil
            var report = WorldRankerReport(world: world, taskWeights: weights)
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
                c.transformerLayers = transformerLayers
                try RankerVariant.apply(
                    variant, to: &c, shortLength: shortLength, simK: simK, transformerLength: transformerLength)
                if c.skipEvents, skipWorld == nil {
                    skipWorld = WorldExamples.build(wp, featureTime: ft, skipEvents: true)
                }
                let data = c.skipEvents ? skipWorld! : world
                var options = RankerTrainingOptions()
                options.epochs = epochs; options.batchSize = batchSize
                options.learningRate = c.architecture == .logistic ? baselineLr : lr
                options.patience = 2; options.calibration = calibration; options.maxStepsPerEpoch = maxStepsPerEpoch
                options.seed = 11
                let started = Date()
                let outcome = try RankerTrainer.train(
                    config: c, train: data.train, valid: data.valid, options: options, comm: comm,
                    save: outPrefix.map { "\($0)\(variant).h5" })
                let logits = try RankerTrainer.score(any: outcome.model, data.test, comm: comm)
                let probs = logits.enumerated().map { k, z in
                    z.map { outcome.calibrators[c.tasks[k]]?(Double($0)) ?? Double(Float.sigmoid($0)) }
                }
                report.add(variant, probabilities: probs, ranking: logits.map { $0.map(Double.init) })
                var withPosition: [Float]? = nil
                if let m = outcome.model as? RankerModel<Float>, c.positionBuckets > 0 {
                    var z = logits[1]
                    var s = 0
                    while s < test.count {
                        let e = min(test.count, s + 8192)
                        let b: RankerBatch<Float> = data.test.batch(s..<e, firstIndex: s, config: c, table: m.table)
                        let p = m.positionLogits(b)[1]
                        for i in s..<e { z[i] += p[i - s] }
                        s = e
                    }
                    withPosition = z
                }
                report.addBias(variant, closeupLogits: logits[1], withPositionTower: withPosition)
                // The monitor's attention statistic on the trained ESU, and with its query zeroed
                // (planted: a model that no longer tells the history's events apart).
                if let m = outcome.model as? RankerModel<Float>, let h = try m.esuEntropy(data.test, comm: comm) {
                    let flat = try m.esuEntropy(data.test, queryScale: 0, comm: comm)!
                    let check = DriftCheck.attention(subject: "esu", base: h, new: flat, DriftThresholds())
                    comm.log(
                        String(
                            format: "%@: ESU attention entropy %.6f (normalised, 1 = uniform); query zeroed %.6f (%@)",
                            variant, h.mean, flat.mean, check.warning ? "flagged" : "not flagged"))
                }
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
                print(report.markdown(calibration: calibration))
            }
        }
    }
}

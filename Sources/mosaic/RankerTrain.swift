import ArgumentParser
import Collective
import Evaluation
import Foundation
import Learning
import Ranking

/// `mosaic ranker train`: data-parallel training with early stopping on a validation split.
struct RankerTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract:
            "Train the feed's ranker on a dataset run's impressions (--data), or a ranker on a CTR CSV (BARS layout: label,f1,…,fF).",
        discussion: """
            --frappe DIR takes train.csv, valid.csv and test.csv from DIR (BARS Frappe_x1) and \
            prints test AUC/logloss beside the BARS leaderboard. Each rank reads only its block of \
            every CSV (about 1/P of the rows: memory proportional to its shard); each step's global \
            batch is split over ranks and the ranks exchange the rows their slice needs, so 1, 2 \
            or 4 ranks train the same model. The RANKER TRAIN line shows the rows and the peak \
            resident memory of every rank.

            --data RUN --embeddings RUN [--user-model RUN]: one row per impression before the cut with \
            the feed's features as of its request (Feed.FeedFeatures: category, surface, device, \
            country, hour; pin age, the user's engagements, the pin's impressions and smoothed \
            closeup / save rates before that day, the two-tower score, the cosines with the user's \
            decayed and recent engagements, the category share; the PinSage vector; the slot for the \
            position tower), labels save and closeup from the same session; the last --valid-days \
            are the validation rows (early stopping, Platt calibration); rows dealt by a hash so 1, 2 \
            and 4 ranks train the same model. DCN-v2 + MMoE (Feed.FeedRankerSetup), saved with its \
            calibration to --out; its validation AUC / GAUC / logloss and reliability per task, the \
            dense features' moments and the history lengths go to NAME.summary.json beside --out NAME.h5 (`mosaic evaluate`, \
            `mosaic monitor`).
            """)

    @OptionGroup var dataset: RankerRunInputs
    @Option(help: "Folder with BARS Frappe_x1 train.csv, valid.csv, test.csv.") var frappe: String?
    @Option(help: "Training CSV (label,f1,…,fF with header).") var train: String?
    @Option(help: "Validation CSV for early stopping.") var valid: String?
    @Option(help: "Test CSV, scored with the best model.") var test: String?
    @Option(help: "Architecture: dcn-mmoe or lr (logistic regression baseline).") var architecture = "dcn-mmoe"
    @Option(help: "Ranker config JSON (overrides the defaults below; the flags then override it).") var config: String?
    @Option(help: "Embedding width per field.") var dim: Int?
    @Option(help: "Embedding table rows (ids must be < rows unless --hash-ids).") var tableRows: Int?
    @Flag(name: .customLong("hash-ids"), help: "Hash raw ids into the table (salted by field).") var hashIDs = false
    @Option(help: "DCN-v2 cross layers.") var crossLayers: Int?
    @Option(help: "Low-rank cross layers of this rank (0 = full rank).") var crossRank: Int?
    @Option(help: "MMoE experts.") var experts: Int?
    @Option(help: "Expert MLP widths, comma-separated.") var expertWidths: String?
    @Option(
        help: "Dropout after the cross network (default 0.3 for dcn-mmoe without --config: best measured on Frappe).")
    var dropout: Double?
    @Option(help: "Per-occurrence L2 on embedding rows.") var embeddingL2: Double?
    @Option(
        help:
            "FuxiCTR-style embedding regularizer λ: (λ/2)·‖W‖² over the whole table per step (default 0.005 for dcn-mmoe without --config: best measured on Frappe)."
    )
    var embeddingDecay: Double?
    @Option(help: "Maximum epochs (40 with --patience 3: best measured on Frappe).") var epochs = 40
    @Option(help: "Global batch size (split over ranks; 1024: best measured on Frappe).") var batchSize = 1024
    @Option(help: "Adam learning rate.") var lr = 1e-3
    @Option(help: "Early-stopping patience in epochs (valid AUC).") var patience = 3
    @Flag(help: "Do not reduce the learning rate ×0.1 on a plateau.") var noReduceOnPlateau = false
    @Option(help: "Use only the first N rows of each split (tests).") var maxRows: Int?
    @Option(help: "Cap steps per epoch (tests; 0 = whole epoch).") var maxStepsPerEpoch = 0
    @Option(help: "Seed of parameters and shuffles.") var seed: UInt64 = 2021
    @Option(help: "Where to save the model (HDF5 with its config).") var out: String?
    @Option(help: "Checkpoint every N steps and after every epoch to OUT's name with .checkpoint.h5 (0: never).")
    var checkpointEvery = 0
    @Flag(help: "Continue from the checkpoint of --checkpoint-every (same data and options): same model.")
    var resume = false

    func run() throws {
        if dataset.data != nil { return try runOnDataset() }
        Communicator.runJob { comm in
            var cfg = RankerConfig()
            if let config {
                guard let text = try? String(contentsOfFile: config, encoding: .utf8) else {
                    throw RankerError("\(config): cannot read the config")
                }
                cfg = try RankerConfig.fromJSON(text)
            }
            guard let arch = RankerConfig.Architecture(rawValue: architecture) else {
                throw ValidationError("unknown architecture \(architecture) (dcn-mmoe, lr)")
            }
            cfg.architecture = arch
            if let dim { cfg.dim = dim }
            if let tableRows { cfg.tableRows = tableRows }
            if hashIDs { cfg.hashIDs = true }
            if let crossLayers { cfg.crossLayers = crossLayers }
            if let crossRank { cfg.crossRank = crossRank }
            if let experts { cfg.experts = experts }
            if let expertWidths {
                cfg.expertWidths = try expertWidths.split(separator: ",").map {
                    guard let v = Int($0) else { throw ValidationError("--expert-widths: '\($0)' is not an integer") }
                    return v
                }
            }
            // Defaults of the best measured Frappe run (docs/ranker.md) unless a config file sets them.
            if config == nil && arch == .dcnMMoE {
                cfg.dropout = 0.3
                cfg.embeddingDecay = 0.005
            }
            if let dropout { cfg.dropout = dropout }
            if let embeddingL2 { cfg.embeddingL2 = embeddingL2 }
            if let embeddingDecay { cfg.embeddingDecay = embeddingDecay }
            cfg.seed = seed
            var paths = (train: train, valid: valid, test: test)
            if let frappe {
                paths = ("\(frappe)/train.csv", "\(frappe)/valid.csv", "\(frappe)/test.csv")
            }
            guard let trainPath = paths.train else { throw ValidationError("give --train or --frappe") }
            func load(_ p: String) throws -> CTRData {
                let d = try CTRData.readCSVShard(path: p, comm: comm)
                return maxRows.map { d.prefix($0) } ?? d
            }
            let trainData = try load(trainPath)
            let validData = try paths.valid.map(load)
            let testData = try paths.test.map(load)
            cfg.fields = trainData.fields
            if !cfg.hashIDs {
                let localMax = max(trainData.ids.max() ?? 0, validData?.ids.max() ?? 0, testData?.ids.max() ?? 0)
                let allMax = Int(try comm.allreduce(localMax, op: .max))
                if tableRows == nil && config == nil { cfg.tableRows = allMax + 1 }
                guard allMax < cfg.tableRows else {
                    throw ValidationError("id \(allMax) ≥ --table-rows \(cfg.tableRows); raise it or use --hash-ids")
                }
            }
            comm.log(
                "ranker train: \(arch.rawValue), \(trainData.globalCount) train rows, \(validData?.globalCount ?? 0) valid, "
                    + "\(testData?.globalCount ?? 0) test, \(comm.size) rank(s); config \(cfg.json())")
            let outcome = try RankerTrainer.train(
                config: cfg, train: trainData, valid: validData, options: trainingOptions, comm: comm, save: out)
            let sum =
                outcome.model.parameters.values.reduce(0.0) { $0 + Double($1) }
                + outcome.model.tables.reduce(0.0) { $0 + $1.values.reduce(0.0) { $0 + Double($1) } }
            var testMetrics: RankerMetrics? = nil
            if let testData {
                testMetrics = try RankerTrainer.distributedMetrics(
                    logits: RankerTrainer.scoreLocal(any: outcome.model, testData, comm: comm),
                    labels: RankerTrainer.localLabels(testData, comm: comm), comm: comm)
            }
            // Evidence of shard-proportional memory: every rank's rows and peak resident memory.
            let localRows = trainData.count + (validData?.count ?? 0) + (testData?.count ?? 0)
            let rowsPerRank = try comm.allgather([Int64(localRows)])
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            let rssPerRank = try comm.allgather([Int64(usage.ru_maxrss / 1024)])
            if comm.isRoot {
                print(
                    "RANKER TRAIN ranks=\(comm.size) arch=\(arch.rawValue) best_epoch=\(outcome.bestEpoch) steps=\(outcome.steps) "
                        + String(format: "param_sum=%.6e examples_per_s=%.0f", sum, outcome.examplesPerSecond)
                        + " rows_per_rank=\(rowsPerRank.map(String.init).joined(separator: ",")) peak_rss_mb_per_rank=\(rssPerRank.map(String.init).joined(separator: ","))"
                )
                print("")
                print("| split | model | AUC | logloss |")
                print("|---|---|---|---|")
                if let v = outcome.valid {
                    print(String(format: "| valid | %@ (ours) | %.4f | %.4f |", arch.rawValue, v.auc[0], v.logloss[0]))
                }
                if let t = testMetrics {
                    print(String(format: "| test | %@ (ours) | %.4f | %.4f |", arch.rawValue, t.auc[0], t.logloss[0]))
                    if frappe != nil {
                        print("| test | BARS DCN-V2 (leaderboard, seed 2021) | 0.9845 | 0.1491 |")
                        print("| test | BARS LR (leaderboard) | 0.9356 | 0.3076 |")
                    }
                }
            }
        }
    }
}

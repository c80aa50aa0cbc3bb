import ArgumentParser
import Collective
import Evaluation
import EventData
import Events
import Foundation
import Learning
import Linalg
import Ranking

/// `mosaic ranker games`: the ranker on Amazon Games (SASRec `Video.txt`) under the
/// 100-sampled-negatives protocol (../shared/data/amazon-games/README.md).
struct RankerGames: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "games",
        abstract: "Ranker HR@10 / NDCG@10 on Amazon Games (leave-one-out, 100 sampled negatives).",
        discussion: """
            Training: every training action (all but each eligible user's last two) is a positive \
            (user, item, the items before it); one negative item per positive is drawn uniformly \
            from items the user never touched (seeded by user and position). Fields: user, item. \
            Validation (early stopping): AUC of the validation target against its 100 sampled \
            negatives, on --valid-users users. Test: the last item against 100 negatives sampled \
            uniformly outside the user's training items (Evaluation.RankingProtocol), history = \
            training items + the validation item; ties optimistic (rank = number of negatives \
            scoring strictly higher); --eval-users users sampled (the reference code samples \
            10,000). Variants: lr (logistic regression with the mean-pooled last 20 items: hashed \
            history × candidate crosses), lr-nohist (user and item weights only), dcn, dcn+din, \
            dcn+sim, dcn+din+sim, dcn+transformer (the Transformer over the last --transformer-length \
            items, the candidate as the final token). The dataset has neither \
            categories nor content embeddings, so SIM's hard search (one category) keeps the \
            user's last K events and soft search is unavailable.
            """)

    @Option(help: "Users' item sequences (default: amazon-games/Video.txt of the shared data folder).")
    var sequences: String?
    @Option(help: "Format of --sequences: sasrec (`user item` per line) or s3rec (`user item item …`).")
    var format = "sasrec"
    @Option(help: "Variants, comma-separated.") var variants = "lr,dcn,dcn+din,dcn+din+sim"
    @Option(help: "Maximum epochs.") var epochs = 6
    @Option(help: "Global batch size.") var batchSize = 1024
    @Option(help: "Adam learning rate.") var lr = 1e-3
    @Option(help: "Adam learning rate of the lr variants (a linear model wants a larger step).") var baselineLr = 1e-2
    @Option(help: "Embedding width.") var dim = 32
    @Option(help: "Users evaluated on test (0 = all eligible).") var evalUsers = 10_000
    @Option(help: "Users for validation AUC.") var validUsers = 2_000
    @Option(help: "Use only the first N users of the file (tests).") var maxUsers: Int?
    @Option(help: "SIM top-K.") var simK = 50
    @Option(help: "Transformer sequence length.") var transformerLength = 50
    @Option(help: "Transformer blocks.") var transformerLayers = 1
    @Option(help: "Seed of the training shuffle (the model's initialisation: 2018 + seed).") var seed: UInt64 = 3

    func run() throws {
        Communicator.runJob { comm in
            guard let path = sequences ?? SharedData.root()?.appendingPathComponent("amazon-games/Video.txt").path
            else {
                throw ValidationError(
                    "no --sequences and no shared data folder: pass --sequences FILE or set MOSAIC_SHARED")
            }
            guard let sequenceFormat = SequenceFormat(rawValue: format) else {
                throw ValidationError("--format must be sasrec or s3rec")
            }
            let data = try ItemSequences.read(path: path, format: sequenceFormat, maxUsers: maxUsers)
            let seqs = data.items.map { $0.map(Int.init) }
            let maxItem = data.itemCount
            let users = seqs.count
            let protocolData = SampledNextItemData(
                sequences: seqs, itemCount: maxItem, evalUsers: evalUsers, validUsers: validUsers)
            let testUsers = protocolData.testUsers
            comm.log(
                "games: \(users) users, \(maxItem) items, \(protocolData.train.count) training rows, \(testUsers.count) test users"
            )
            var lines: [String] = []
            for variant in variants.split(separator: ",").map(String.init) {
                var c = RankerConfig()
                c.fields = 2; c.dim = dim; c.tableRows = protocolData.tableRows; c.hashIDs = false
                c.crossLayers = 2; c.experts = 1; c.expertWidths = [128, 64]; c.towerWidths = [1]
                c.tasks = ["click"]; c.taskWeights = [1]; c.dropout = 0.2; c.candidateField = 1
                c.transformerLayers = transformerLayers; c.seed = 2018 &+ seed
                try RankerVariant.apply(
                    variant, to: &c, shortLength: 20, simK: simK, transformerLength: transformerLength)
                var options = RankerTrainingOptions()
                options.epochs = epochs; options.batchSize = batchSize
                options.learningRate = c.architecture == .logistic ? baselineLr : lr
                options.patience = 2; options.calibration = "none"; options.seed = seed
                let outcome = try RankerTrainer.train(
                    config: c, train: protocolData.train, valid: protocolData.valid, options: options, comm: comm)
                let z = try RankerTrainer.score(any: outcome.model, protocolData.test, comm: comm)[0]
                let acc = protocolData.evaluate(testLogits: z)
                lines.append(String(format: "| %@ (ours) | %.4f | %.4f |", variant, acc.hitRate(10), acc.ndcg(10)))
                comm.log(
                    String(
                        format: "%@: HR@10 %.4f NDCG@10 %.4f (best epoch %d)", variant, acc.hitRate(10), acc.ndcg(10),
                        outcome.bestEpoch))
            }
            if comm.isRoot {
                print("RANKER GAMES ranks=\(comm.size) users=\(users) test_users=\(testUsers.count) ties=optimistic")
                print("")
                print("| model | HR@10 | NDCG@10 |")
                print("|---|---|---|")
                lines.forEach { print($0) }
                // Published figures belong to SASRec's Amazon Games file only.
                if (path as NSString).lastPathComponent == "Video.txt" && users == 31_013 && maxUsers == nil {
                    print("| SASRec (paper, Table III) | 0.7410 | 0.5360 |")
                    print(
                        "| PopRec (paper) / popularity (Events' tests, all users) | 0.4724 / 0.4765 | 0.2779 / 0.2785 |"
                    )
                }
            }
        }
    }
}

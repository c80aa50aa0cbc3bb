import ArgumentParser
import Collective
import Evaluation
import EventData
import Events
import Foundation
import Graph
import Models
import ProcessKit

/// `mosaic graph evaluate`: next-item retrieval by item neighbours of the user's recent items,
/// full ranking and leave-one-out (`Evaluation.NextItemFullRanking`), on any dataset in the
/// S3-Rec or SASRec format.
struct GraphEvaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Full-ranking HR/NDCG of item neighbours of the user's recent items (walks, PinSage, baselines).",
        discussion: """
            Leave-one-out: the last item of each user is the test target, the second last the validation target. \
            The query is the user's last --recent input items (test input = seq[:-1]), weighted 1, 1/2, 1/3, … from \
            the most recent; an item's score is the weighted sum of its similarity to them. All items are ranked; \
            the input items are removed; ties count as the average rank; Recall@k (one target per user) is HR@k. Methods: co-occurrence (cosine of item \
            co-occurrence in the training prefixes seq[:-2]), transitions (directed item-to-item transitions within 8 \
            positions of the training prefixes, its own query of the last 5 items; settings chosen on validation, \
            `TransitionSimilarity.Config`), content (cosine of the attribute multi-hots; with \
            --attributes), walks (importance weights of --walks neighbours; the graph must be built with \
            --hold-out 2) and pinsage (dot products of --embeddings vectors). Users are split over the ranks. \
            Without --sequences, reads S3-Rec Beauty from the shared data folder ($MOSAIC_SHARED or \
            ../shared/data); published figures are printed only for that dataset.
            """)

    @Option(help: "Users' item sequences (default: s3rec-beauty/Beauty.txt of the shared data folder).")
    var sequences: String?
    @Option(help: "Format of --sequences: s3rec (`user item item …` per line) or sasrec (`user item` per line).")
    var format = "s3rec"
    @Option(help: "S3-Rec item attributes JSON (item id → [attribute ids]); enables the content baseline.")
    var attributes: String?
    @Option(help: "Walks run root (importance neighbours), optional.") var walks: String?
    @Option(help: "PinSage embeddings run root, optional.") var embeddings: String?
    @Option(help: "Recent input items used as the query.") var recent = 3
    @Option(help: "Evaluate on test (default) or validation targets.") var split = "test"

    func validate() throws {
        guard SequenceFormat(rawValue: format) != nil else { throw ValidationError("--format must be s3rec or sasrec") }
        guard ["test", "validation"].contains(split) else {
            throw ValidationError("--split must be test or validation")
        }
        guard recent >= 1 else { throw ValidationError("--recent must be at least 1") }
    }

    func run() throws {
        Communicator.runJob { comm in
            let t0 = now()
            var sequencesPath = sequences, attributesPath = attributes
            if sequencesPath == nil {
                guard let root = SharedData.root() else {
                    throw ValidationError(
                        "no --sequences and no shared data folder: pass --sequences FILE or set MOSAIC_SHARED")
                }
                sequencesPath = root.appendingPathComponent("s3rec-beauty/Beauty.txt").path
                attributesPath =
                    attributesPath ?? root.appendingPathComponent("s3rec-beauty/Beauty_item2attributes.json").path
            }
            let data = try ItemSequences.read(path: sequencesPath!, format: SequenceFormat(rawValue: format)!)
            let n = data.itemCount
            let sequences = data.items.map { $0.map(Int.init) }
            var methods: [(String, any ItemSimilarity)] = [
                (
                    "co-occurrence",
                    CoOccurrenceSimilarity(baskets: NextItemFullRanking.trainingPrefixes(sequences), itemCount: n)
                ),
                (
                    "transitions",
                    TransitionSimilarity(sequences: NextItemFullRanking.trainingPrefixes(sequences), itemCount: n)
                ),
            ]
            if let attributesPath {
                var tags = [[Int]](repeating: [], count: n + 1)
                for (item, values) in try ItemSequences.readAttributes(path: attributesPath) where item <= n {
                    tags[Int(item)] = values.map(Int.init)
                }
                methods.append(("content", AttributeSimilarity(attributes: tags)))
            }
            if let walks {
                let nb = try ImportanceNeighbors.readAll(root: URL(fileURLWithPath: walks))
                var lists = [[(item: Int, weight: Float)]](repeating: [], count: n + 1)
                for r in 0..<nb.pins.count where nb.pins[r] >= 0 && nb.pins[r] <= n {
                    lists[Int(nb.pins[r])] = nb.neighbors(r).map { (Int($0.id), $0.weight) }
                }
                methods.append(("walks", NeighborSimilarity(neighbors: lists)))
            }
            if let embeddings {
                let e = try PinEmbeddings.readAll(root: URL(fileURLWithPath: embeddings))
                var z = [Float](repeating: 0, count: (n + 1) * e.d)
                for (r, id) in e.ids.enumerated() where id >= 0 && id <= n {
                    z.replaceSubrange(Int(id) * e.d..<(Int(id) + 1) * e.d, with: e.vectors[r * e.d..<(r + 1) * e.d])
                }
                methods.append(("pinsage", EmbeddingSimilarity(vectors: z, d: e.d)))
            }
            let protocolSpec = NextItemFullRanking(
                target: split == "test" ? .test : .validation, recent: recent, cutoffs: [5, 10, 20, 100, 500])
            let results = try protocolSpec.evaluate(
                sequences: sequences, itemCount: n, methods: methods.map(\.1), comm: comm)
            comm.log(String(format: "graph evaluate: %d users, %d items, %.1fs", sequences.count, n, now() - t0))
            guard comm.isRoot else { return }
            let name = (data.path as NSString).lastPathComponent
            print(
                "| method (\(name), \(split), full ranking, \(sequences.count) users) | HR@5 | NDCG@5 | HR@10 | NDCG@10 | HR@20 | NDCG@20 | Recall@100 | Recall@500 |"
            )
            print("|---|---|---|---|---|---|---|---|---|")
            for ((method, _), a) in zip(methods, results) {
                print(
                    String(
                        format: "| %@ | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f |", method, a.hitRate(5),
                        a.ndcg(5), a.hitRate(10), a.ndcg(10), a.hitRate(20), a.ndcg(20), a.hitRate(100), a.hitRate(500))
                )
            }
            for row in PublishedFigures.fullRanking(fileName: name, users: sequences.count, items: n) {
                print(
                    String(
                        format: "| %@ | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | – | – |", row.model, row.hitRate[5]!,
                        row.ndcg[5]!,
                        row.hitRate[10]!, row.ndcg[10]!, row.hitRate[20]!, row.ndcg[20]!))
            }
        }
    }
}

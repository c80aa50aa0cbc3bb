import ArgumentParser
import Collective
import EventData
import Evaluation
import Events
import Feed
import Foundation
import Models
import Ranking

/// `mosaic ranker adapter`: a ranker trained on one PinSage version, scored with the old
/// vectors, the new ones and the new ones mapped back into the old space.
struct AdapterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapter",
        abstract:
            "Fit the warm-start adapter between two PinSage versions; the ranker's save AUC with old, new and mapped vectors.",
        discussion: """
            A ranker trained on the --old-embeddings (`ranker train --data … --embeddings OLD`) is \
            scored on the impressions at or after --from-ms (the days it did not train on) three \
            times: with the old vectors (its own space), with the --new-embeddings as they are (another \
            space), and with the new vectors mapped into the old space by the least-squares adapter \
            (Evaluation.EmbeddingAdapter, LAPACK dgels) fitted on the pins in both versions; the \
            features come from each version (FeedFeatures: the PinSage vector and the cosines). \
            Prints the save AUC of each beside the versions' mean cosine before and after the map; \
            --out writes the adapter (JSON). Collective: every rank its users and pins.
            """)

    @Option(help: "Root folder of the dataset runs.") var data = "out/world"
    @Option(help: "The PinSage embeddings run the ranker was trained with.") var oldEmbeddings: String
    @Option(help: "A newer PinSage embeddings run of the same pins.") var newEmbeddings: String
    @Option(help: "The ranker model file trained on --old-embeddings.") var ranker = "out/ranker.h5"
    @Option(help: "The two-tower run the ranker was trained with (the tower-score feature).") var userModel: String?
    @Option(help: "Score the impressions at or after this time (ms): the ranker's --before-ms.") var fromMs: Int64
    @Option(help: "Write the fitted adapter (new → old space) as JSON here.") var out: String?

    func run() throws {
        Communicator.runJob { comm in
            let reader = try DatasetReader(root: URL(fileURLWithPath: data))
            let users = try UserEvents.load(world: reader, comm: comm)
            let profiles = try UserProfile.load(world: reader, comm: comm)
            let oldRoot = URL(fileURLWithPath: oldEmbeddings), newRoot = URL(fileURLWithPath: newEmbeddings)
            let oldPins = try PinFeatureTable.load(world: reader, embeddings: oldRoot, comm: comm)
            let newPins = try PinFeatureTable.load(world: reader, embeddings: newRoot, comm: comm)
            let oldE = try PinEmbeddings.readMine(root: oldRoot, comm: comm)
            let newE = try PinEmbeddings.readMine(root: newRoot, comm: comm)
            // The ranker reads the old space: map the new vectors into it.
            let adapter = try EmbeddingAdapter.fit(
                oldIDs: newE.ids, old: newE.vectors, dOld: newPins.d, newIDs: oldE.ids, new: oldE.vectors,
                dNew: oldPins.d, comm: comm)
            let mappedVectors = adapter.apply(newE.vectors)
            let attributes = try newPins.lookup(newE.ids, comm: comm)
            let mapped = PinFeatureTable(
                ids: newE.ids, vectors: mappedVectors, d: oldPins.d, categories: attributes.categories,
                createdAt: attributes.createdAt, embeddingVersion: oldPins.embeddingVersion)
            let raw =
                try oldPins.d == newPins.d
                ? EmbeddingDrift(
                    baseIDs: oldE.ids, base: oldE.vectors, newIDs: newE.ids, new: newE.vectors, d: oldPins.d, comm: comm
                )
                : nil
            let after = try EmbeddingDrift(
                baseIDs: oldE.ids, base: oldE.vectors, newIDs: newE.ids, new: mappedVectors, d: oldPins.d, comm: comm)
            let (_, model, _) = try RankerArtifact.load(ranker)
            let tower = try userModel.map {
                try TwoTowerModel<Float>.load(
                    run: URL(fileURLWithPath: $0), embeddingVersion: oldPins.embeddingVersion, d: oldPins.d
                ).model
            }
            let stats = try PinDailyStats.build(users: users, before: .max, comm: comm)
            var rows: [(String, Double?, Int)] = []
            for (name, pins) in [("old (trained on)", oldPins), ("new, as is", newPins), ("new, mapped", mapped)] {
                guard pins.d == model.config.contentWidth else {
                    rows.append((name + ": width \(pins.d) ≠ the ranker's \(model.config.contentWidth)", nil, 0))
                    continue
                }
                let (rowsAfter, _) = try RankingExamples.build(
                    users: users, profiles: profiles, pins: pins, stats: stats, tower: tower, before: .max,
                    rowsFrom: fromMs, validDays: 0, comm: comm)
                let logits = RankerTrainer.scoreLocal(any: model, rowsAfter, comm: comm)[0].map(Double.init)
                let labels = RankerTrainer.localLabels(rowsAfter, comm: comm)[0].map(Double.init)
                let auc = try DistributedScores.sort(scores: logits, labels: labels, comm: comm).auc(comm: comm)
                rows.append((name, auc, rowsAfter.globalCount))
            }
            if comm.isRoot {
                if let out { try StageSummary.write(adapter, to: out) }
                print(
                    String(
                        format: "ADAPTER pins=%d cosine_raw=%@ cosine_mapped=%.4f (new → old space, %d → %d)",
                        after.common, HTMLReport.format(raw?.meanCosine), after.meanCosine, newPins.d, oldPins.d))
                print("\n| PinSage vectors fed to the ranker | impressions | save AUC |\n|---|---:|---:|")
                for (name, auc, n) in rows { print("| \(name) | \(n) | \(HTMLReport.format(auc)) |") }
            }
        }
    }
}

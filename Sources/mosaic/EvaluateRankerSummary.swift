import Collective
import Evaluation
import Feed
import Foundation
import Ranking

extension RankerSummary {
    /// Collective: the summary of a trained feed ranker — per task the validation AUC, GAUC (by
    /// user), log loss and the calibrated probabilities' reliability diagram, and the training
    /// rows' positive rate; the moments of the training rows' dense features
    /// (`FeedFeatures.denseNames`) and the values of their sparse fields
    /// (`FeedFeatures.fieldNames`); `history`, the users' engagements before the cut. The feed's
    /// ranker has no sequence attention (`attention` stays nil). Memory: the rank's validation
    /// logits.
    static func measure(
        outcome: RankerTrainer.Outcome, train: CTRData, valid: CTRData, history: SequenceLengths, comm: Communicator
    ) throws -> RankerSummary {
        var tasks: [Task] = []
        if valid.globalCount > 0 {
            let logits = RankerTrainer.scoreLocal(any: outcome.model, valid, comm: comm)
            let labels = RankerTrainer.localLabels(valid, comm: comm)
            let rows = RankerTrainer.localRows(valid, comm: comm)
            let groups = valid.groups.isEmpty ? rows.map { Int64($0) } : Array(valid.groups[rows])
            for (k, task) in outcome.model.config.tasks.enumerated() {
                let z = logits[k].map(Double.init), y = labels[k].map(Double.init)
                let sorted = try DistributedScores.sort(scores: z, labels: y, comm: comm)
                let reliability = try outcome.calibrators[task].map { c in
                    try ReliabilityDiagram(probabilities: z.map { c($0) }, labels: y, comm: comm)
                }
                var t = Task(
                    task: task, auc: try sorted.auc(comm: comm),
                    gauc: try DistributedScores.gauc(scores: z, labels: y, groups: groups, comm: comm),
                    logloss: try DistributedScores.logloss(logits: z, labels: y, comm: comm),
                    reliability: reliability)
                let mine = RankerTrainer.localLabels(train, comm: comm)[k]
                var counts = [mine.reduce(0.0) { $0 + Double($1) }, Double(mine.count)]
                try comm.allreduce(&counts)
                t.trainPositiveRate = counts[0] / max(counts[1], 1)
                tasks.append(t)
            }
        }
        let features =
            train.denseWidth == FeedFeatures.denseNames.count
            ? try FeatureMoments(rows: train.dense, names: FeedFeatures.denseNames, comm: comm) : nil
        var summary = RankerSummary(
            trainRows: train.globalCount, validRows: valid.globalCount, bestEpoch: outcome.bestEpoch, tasks: tasks,
            features: features, historyLengths: history, attention: nil)
        if train.fields == FeedFeatures.fieldNames.count {
            summary.categorical = try CategoricalDistribution.measure(
                ids: train.ids, names: FeedFeatures.fieldNames, comm: comm)
        }
        return summary
    }
}

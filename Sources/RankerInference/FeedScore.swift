import Foundation
import Layers

/// A feed candidate's final score from the ranker's logits: each task's calibrated probability
/// (its `Calibrator`, else the sigmoid), combined as w_save · P(save) + w_closeup · P(closeup).
/// One implementation for the nightly ranking (`feed rank`) and the serving shard's online
/// re-scoring, so both give the same numbers for the same logits.
public enum FeedScore {
    /// One candidate's weighted score and calibrated probabilities.
    public struct Scored: Sendable, Equatable {
        public var score: Float, pSave: Float, pCloseup: Float
        public init(score: Float, pSave: Float, pCloseup: Float) {
            self.score = score
            self.pSave = pSave
            self.pCloseup = pCloseup
        }
    }

    /// The scores of `logits` (tasks × candidates, tasks named by `tasks`; a missing save or
    /// closeup task reads task 0).
    public static func combine(
        logits: [[Float]], tasks: [String], calibrators: [String: Calibrator], saveWeight: Double = 1,
        closeupWeight: Double = 1
    ) -> [Scored] {
        let saveTask = tasks.firstIndex(of: "save") ?? 0, closeupTask = tasks.firstIndex(of: "closeup") ?? 0
        func probability(_ task: Int, _ i: Int) -> Float {
            let z = Double(logits[task][i])
            return Float(calibrators[tasks[task]].map { $0(z) } ?? 1 / (1 + exp(-z)))
        }
        let n = logits.first?.count ?? 0
        return (0..<n).map { i in
            let s = probability(saveTask, i), c = probability(closeupTask, i)
            return Scored(score: Float(saveWeight) * s + Float(closeupWeight) * c, pSave: s, pCloseup: c)
        }
    }
}

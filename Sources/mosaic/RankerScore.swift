import ArgumentParser
import Collective
import Evaluation
import Foundation
import Learning
import Ranking

/// `mosaic ranker score`: batch scoring from a saved model.
struct RankerScore: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Score a CTR CSV with a saved ranker; writes per-task probabilities and the final score.",
        discussion: """
            The final score is Σ_k w_k·P_k with the task weights of the saved config; P_k is \
            calibrated when the model file holds calibrators for task k. Positions are nulled. \
            Prints AUC/logloss per task against the CSV's labels. Each rank reads and scores only \
            its block of the CSV; the metrics are computed without gathering the scores, and the \
            output CSV is written by the ranks in turn (rank 0 first), each appending its rows.
            """)

    @Option(help: "Saved model (HDF5 from `mosaic ranker train --out`).") var model: String
    @Option(help: "CSV to score (same layout as training).") var data: String
    @Option(help: "Output CSV: row,p_<task>…,score (row = the input's data row, 0-based).") var out: String?

    func run() throws {
        Communicator.runJob { comm in
            let (config, m, calibrators) = try RankerArtifact.load(model)
            // Each rank reads and scores its block of the CSV; nothing is gathered.
            let d = try CTRData.readCSVShard(path: data, fields: config.fields, comm: comm)
            let logits = RankerTrainer.scoreLocal(any: m, d, comm: comm)
            let labels = RankerTrainer.localLabels(d, comm: comm)
            let probs: [[Double]] = logits.enumerated().map { k, z in
                let cal = calibrators[config.tasks[k]]
                return z.map { (logit: Float) -> Double in
                    if let cal { return cal(Double(logit)) }
                    return Double(Float.sigmoid(logit))
                }
            }
            let metrics = try RankerTrainer.distributedMetrics(logits: logits, labels: labels, comm: comm)
            if let out {
                // The ranks append their rows in turn: rank 0 creates the file, a barrier hands
                // the file to the next rank.
                let mine = RankerTrainer.localRows(d, comm: comm)
                let first = (d.isSharded ? d.shardStart : 0) + mine.lowerBound
                var text =
                    comm.isRoot ? "row," + config.tasks.map { "p_\($0)" }.joined(separator: ",") + ",score\n" : ""
                for i in 0..<mine.count {
                    var s = 0.0
                    var line = "\(first + i)"
                    for k in probs.indices {
                        line += String(format: ",%.6f", probs[k][i])
                        s += config.taskWeights[k] * probs[k][i]
                    }
                    text += line + String(format: ",%.6f\n", s)
                }
                for r in 0..<comm.size {
                    if r == comm.rank {
                        if r == 0 {
                            try text.write(toFile: out, atomically: false, encoding: .utf8)
                        } else {
                            guard let handle = FileHandle(forWritingAtPath: out) else {
                                throw RankerError("\(out): cannot open for appending on rank \(r)")
                            }
                            handle.seekToEndOfFile()
                            handle.write(Data(text.utf8))
                            try handle.close()
                        }
                    }
                    try comm.barrier()
                }
            }
            if comm.isRoot {
                print(
                    "RANKER SCORE rows=\(d.globalCount) \(zip(config.tasks, metrics.auc).map { String(format: "%@_auc=%.4f", $0, $1) }.joined(separator: " "))"
                )
            }
        }
    }
}

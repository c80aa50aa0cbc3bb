import ArgumentParser
import Collective
import Evaluation
import Foundation
import Learning
import Linalg

/// `mosaic selftest metrics`: AUC, logloss, Platt and isotonic calibration computed over scores
/// spread across the ranks (sample sort, allreduced sums — nothing gathered) must equal the
/// single-process computation on all the scores (which every rank regenerates for the check).
struct SelfTestMetrics: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "metrics")

    @Option(help: "Examples over all ranks.") var count = 5_000
    @Option(help: "A rank that holds no examples (-1 = none).") var emptyRank = -1

    struct Failure: Error, CustomStringConvertible { let description: String }

    func run() throws {
        Communicator.runJob { comm in
            // Global example i: a logit with many exact ties (rounded to 0.05; 30 % exactly 0.5)
            // and a label drawn from sigmoid(2·logit − 0.3).
            var scores: [Double] = [], labels: [Double] = []
            for i in 0..<count {
                var r = RandomStream(seed: 77, rank: 0, index: UInt64(i))
                let z = r.uniform() < 0.3 ? 0.5 : (r.normal() * 1.5 * 20).rounded() / 20
                scores.append(z)
                labels.append(r.uniform() < 1 / (1 + exp(-(2 * z - 0.3))) ? 1 : 0)
            }
            // This rank's block: uneven sizes; `emptyRank` holds none.
            let holders = (0..<comm.size).filter { $0 != emptyRank }
            var mine = 0..<0
            if let k = holders.firstIndex(of: comm.rank) {
                let lo = count * k * k / (holders.count * holders.count)
                let hi = count * (k + 1) * (k + 1) / (holders.count * holders.count)
                mine = lo..<hi
            }
            let s = Array(scores[mine]), y = Array(labels[mine])
            // Distributed.
            let sorted = try DistributedScores.sort(scores: s, labels: y, comm: comm)
            let auc = try sorted.auc(comm: comm) ?? .nan
            let ll = try DistributedScores.logloss(logits: s, labels: y, comm: comm)
            let platt = try PlattScaling.fit(scores: s, labels: y, comm: comm)
            let iso = try IsotonicRegression.fit(globallySorted: sorted.scores, labels: sorted.labels, comm: comm)
            // The global order holds: ascending within the rank, and across rank boundaries.
            let firstLast = try comm.allgather([sorted.scores.first ?? .nan, sorted.scores.last ?? .nan])
            var previous = -Double.infinity
            for r in 0..<comm.size where !firstLast[2 * r].isNaN {
                guard firstLast[2 * r] > previous || (r == 0) else {
                    throw Failure(
                        description: "rank \(r) starts at \(firstLast[2 * r]) ≤ the previous rank's last \(previous)")
                }
                previous = firstLast[2 * r + 1]
            }
            guard zip(sorted.scores, sorted.scores.dropFirst()).allSatisfy({ $0 <= $1 }) else {
                throw Failure(description: "rank \(comm.rank): scores not ascending")
            }
            let held = try comm.allreduce(Int64(sorted.scores.count))
            guard held == Int64(count) else {
                throw Failure(description: "\(held) scores after the sort, expected \(count)")
            }
            // Single process.
            let refAUC = ClassificationMetrics.auc(scores: scores, labels: labels.map { $0 > 0.5 }) ?? .nan
            let refLL = ClassificationMetrics.logloss(
                probabilities: scores.map { 1 / (1 + exp(-$0)) }, labels: labels.map { $0 > 0.5 })
            let refPlatt = PlattScaling.fit(scores: scores, labels: labels)
            let refIso = IsotonicRegression.fit(scores: scores, labels: labels)
            func close(_ a: Double, _ b: Double, _ tol: Double) -> Bool { abs(a - b) <= tol * max(1, abs(b)) }
            var failures: [String] = []
            if !close(auc, refAUC, 1e-12) { failures.append("AUC \(auc) vs \(refAUC)") }
            if !close(ll, refLL, 1e-9) { failures.append("logloss \(ll) vs \(refLL)") }
            if !close(platt.a, refPlatt.a, 1e-8) || !close(platt.b, refPlatt.b, 1e-8) {
                failures.append("Platt \(platt) vs \(refPlatt)")
            }
            if iso.thresholds.count != refIso.thresholds.count
                || !zip(iso.thresholds, refIso.thresholds).allSatisfy({ close($0, $1, 1e-9) })
                || !zip(iso.values, refIso.values).allSatisfy({ close($0, $1, 1e-9) })
            {
                failures.append("isotonic \(iso.thresholds.count) blocks vs \(refIso.thresholds.count)")
            }
            guard failures.isEmpty else {
                throw Failure(description: "rank \(comm.rank): " + failures.joined(separator: "; "))
            }
            if comm.isRoot {
                print(
                    String(
                        format:
                            "SELFTEST METRICS OK ranks=%d auc=%.12f logloss=%.9f platt=%.6f,%.6f isotonic_blocks=%d",
                        comm.size, auc, ll, platt.a, platt.b, iso.thresholds.count))
            }
        }
    }
}

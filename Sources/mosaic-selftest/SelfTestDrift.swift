import ArgumentParser
import Collective
import Evaluation
import Foundation
import Linalg

/// `mosaic-selftest drift`: the drift statistics computed over rows spread across the ranks
/// (PSI at the base's quantiles by a sample sort, feature moments, sequence lengths, attention
/// entropy by allreduce, embedding drift by routing ids to owners) must equal the one-process
/// computation on all the rows (which every rank regenerates for the check).
struct SelfTestDrift: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "drift")

    @Option(help: "Rows over all ranks.") var count = 3_000

    struct Failure: Error, CustomStringConvertible { let description: String }

    func run() throws {
        Communicator.runJob { comm in
            let n = count, d = 4, t = 6
            var base: [Double] = [], new: [Double] = [], features: [Float] = [], lengths: [Int] = []
            var weights: [Float] = [], mask: [Bool] = []
            var ids: [Int64] = [], oldVectors: [Float] = [], newVectors: [Float] = []
            var labels: [Double] = [], groups: [Int64] = []
            for i in 0..<n {
                var r = RandomStream(seed: 91, rank: 0, index: UInt64(i))
                base.append((r.normal() * 10).rounded() / 10)  // ties at the quantiles
                new.append(r.normal() + 0.3)
                labels.append(r.uniform() < 1 / (1 + exp(-new[i])) ? 1 : 0)
                groups.append(Int64(i % 37))
                features += [Float(r.normal()), Float(r.uniform() * 5), Float(i % 7)]
                lengths.append(r.int(below: 300))
                let valid = 1 + r.int(below: t)
                for s in 0..<t { mask.append(s < valid) }
                let logits = (0..<t).map { s in s < valid ? r.normal() * 2 : -Double.infinity }
                let m = logits.max()!, z = logits.reduce(0.0) { $0 + exp($1 - m) }
                weights += logits.map { Float(exp($0 - m) / z) }
                ids.append(Int64(i * 13 + 5))
                for _ in 0..<d {
                    let v = Float(r.normal())
                    oldVectors.append(v)
                    newVectors.append(v + Float(r.normal() * 0.5))
                }
            }
            // Uneven blocks; the new embeddings in another order (reversed) than the old ones.
            let k = comm.rank, p = comm.size
            let mine = (n * k * k / (p * p))..<(n * (k + 1) * (k + 1) / (p * p))
            let theirs = (n - mine.upperBound)..<(n - mine.lowerBound)
            let psi = try PopulationStability(base: Array(base[mine]), new: Array(new[mine]), bins: 10, comm: comm)
            let moments = try FeatureMoments(
                rows: Array(features[mine.lowerBound * 3..<mine.upperBound * 3]), names: ["a", "b", "c"], comm: comm)
            let seq = try SequenceLengths(lengths: Array(lengths[mine]), comm: comm)
            let entropy = try AttentionEntropy(
                weights: Array(weights[mine.lowerBound * t..<mine.upperBound * t]),
                mask: Array(mask[mine.lowerBound * t..<mine.upperBound * t]), heads: 1, length: t, comm: comm)
            let drift = try EmbeddingDrift(
                baseIDs: Array(ids[mine]), base: Array(oldVectors[mine.lowerBound * d..<mine.upperBound * d]),
                newIDs: Array(ids[theirs]), new: Array(newVectors[theirs.lowerBound * d..<theirs.upperBound * d]), d: d,
                comm: comm)
            let adapter = try EmbeddingAdapter.fit(
                oldIDs: Array(ids[mine]), old: Array(oldVectors[mine.lowerBound * d..<mine.upperBound * d]), dOld: d,
                newIDs: Array(ids[theirs]), new: Array(newVectors[theirs.lowerBound * d..<theirs.upperBound * d]),
                dNew: d, comm: comm)
            let refAdapter = try EmbeddingAdapter.fit(old: oldVectors, new: newVectors, dOld: d, dNew: d)
            let probabilities = new.map { 1 / (1 + exp(-$0)) }
            let gauc = try DistributedScores.gauc(
                scores: Array(new[mine]), labels: Array(labels[mine]), groups: Array(groups[mine]), comm: comm)
            let reliability = try ReliabilityDiagram(
                probabilities: Array(probabilities[mine]), labels: Array(labels[mine]), comm: comm)
            // One process on every row.
            let refGAUC = ClassificationMetrics.gauc(scores: new, labels: labels.map { $0 > 0.5 }, groups: groups).value
            let refReliability = ReliabilityDiagram(probabilities: probabilities, labels: labels)
            let refPSI = PopulationStability(base: base, new: new, bins: 10)
            let refMoments = FeatureMoments(rows: features, names: ["a", "b", "c"])
            let codes = features.map { Int64($0 * 3) }  // three columns of small integers
            let categories = try CategoricalDistribution.measure(
                ids: Array(codes[mine.lowerBound * 3..<mine.upperBound * 3]), names: ["a", "b", "c"], comm: comm)
            let refCategories = CategoricalDistribution.measure(ids: codes, names: ["a", "b", "c"])
            let refSeq = SequenceLengths(lengths: lengths)
            let refEntropy = AttentionEntropy(weights: weights, mask: mask, heads: 1, length: t)
            let refDrift = EmbeddingDrift(baseIDs: ids, base: oldVectors, newIDs: ids, new: newVectors, d: d)
            func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= 1e-9 * max(1, abs(b)) }
            var failures: [String] = []
            if psi.edges != refPSI.edges || psi.base != refPSI.base || psi.new != refPSI.new
                || !close(psi.psi, refPSI.psi)
            {
                failures.append("PSI \(psi.psi) (\(psi.edges.count) edges) vs \(refPSI.psi) (\(refPSI.edges.count))")
            }
            if moments.count != refMoments.count
                || !zip(moments.mean + moments.std, refMoments.mean + refMoments.std)
                    .allSatisfy(close)
            {
                failures.append("moments \(moments) vs \(refMoments)")
            }
            if categories != refCategories { failures.append("categorical distributions differ") }
            if seq != refSeq { failures.append("sequence lengths \(seq) vs \(refSeq)") }
            if entropy.count != refEntropy.count || !close(entropy.mean, refEntropy.mean) {
                failures.append("attention entropy \(entropy) vs \(refEntropy)")
            }
            if drift.common != refDrift.common || drift.baseOnly != 0 || !close(drift.meanCosine, refDrift.meanCosine) {
                failures.append("embedding drift \(drift) vs \(refDrift)")
            }
            if gauc == nil || refGAUC == nil || !close(gauc!, refGAUC!) {
                failures.append("GAUC \(gauc as Any) vs \(refGAUC as Any)")
            }
            if reliability.bins.map(\.count) != refReliability.bins.map(\.count)
                || !close(reliability.ece, refReliability.ece)
            {
                failures.append("reliability \(reliability.ece) vs \(refReliability.ece)")
            }
            if !zip(adapter.weights, refAdapter.weights).allSatisfy({ abs($0 - $1) < 1e-8 }) {
                failures.append("adapter \(adapter.weights.prefix(4)) vs \(refAdapter.weights.prefix(4))")
            }
            guard failures.isEmpty else {
                throw Failure(description: "rank \(comm.rank): " + failures.joined(separator: "; "))
            }
            if comm.isRoot {
                print(
                    String(
                        format:
                            "SELFTEST DRIFT OK ranks=%d psi=%.9f bins=%d feature_mean=%.9f seq_mean=%.6f entropy=%.9f cosine=%.9f common=%d gauc=%.9f ece=%.9f",
                        comm.size, psi.psi, psi.edges.count + 1, moments.mean[0], seq.mean, entropy.mean,
                        drift.meanCosine, drift.common, gauc ?? .nan, reliability.ece))
            }
        }
    }
}

import Evaluation
import Foundation
import Linalg
import Testing

/// O(n²) AUC: pairs (positive, negative) with the positive higher count 1, ties ½.
func bruteForceAUC(_ s: [Double], _ y: [Bool]) -> Double? {
    var num = 0.0, pairs = 0.0
    for i in s.indices where y[i] {
        for j in s.indices where !y[j] {
            num += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0
            pairs += 1
        }
    }
    return pairs > 0 ? num / pairs : nil
}

@Suite("Classification metrics")
struct ClassificationMetricsTests {
    @Test("AUC by hand: perfect, reversed, all tied, and a worked example with a tie")
    func aucByHand() throws {
        #expect(ClassificationMetrics.auc(scores: [0.1, 0.2, 0.8, 0.9], labels: [false, false, true, true]) == 1)
        #expect(ClassificationMetrics.auc(scores: [0.9, 0.8, 0.2, 0.1], labels: [false, false, true, true]) == 0)
        #expect(ClassificationMetrics.auc(scores: [0.5, 0.5, 0.5], labels: [true, false, false]) == 0.5)
        // Positives 0.8, 0.4; negatives 0.4, 0.1, 0.6. Pairs: (0.8: 3 wins), (0.4: tie ½, win 1, loss) = 4.5 / 6.
        #expect(
            ClassificationMetrics.auc(scores: [0.8, 0.4, 0.4, 0.1, 0.6], labels: [true, true, false, false, false])
                == 0.75)
        #expect(ClassificationMetrics.auc(scores: [0.3, 0.7], labels: [true, true]) == nil)
    }

    @Test("AUC equals the O(n²) pair count on random data with many ties", arguments: [1, 2, 3, 4, 5])
    func aucBruteForce(seed: Int) {
        var r = RandomStream(seed: UInt64(seed))
        let n = 50 + r.int(below: 300)
        let s = (0..<n).map { _ in Double(r.int(below: 12)) / 4 }  // heavy ties
        let y = s.map { r.uniform() < 0.2 + 0.1 * $0 }
        let fast = ClassificationMetrics.auc(scores: s, labels: y)
        let slow = bruteForceAUC(s, y)
        #expect(fast != nil && abs(fast! - slow!) < 1e-12)
    }

    @Test("GAUC weights each user's AUC by impressions and skips one-class users")
    func gaucByHand() {
        // User 1: 4 impressions, AUC 1. User 2: 2 impressions, AUC 0. User 3: all negative, skipped.
        let s: [Float] = [0.9, 0.8, 0.1, 0.2, 0.3, 0.7, 0.5, 0.6]
        let y = [true, true, false, false, true, false, false, false]
        let g: [Int64] = [1, 1, 1, 1, 2, 2, 3, 3]
        let r = ClassificationMetrics.gauc(scores: s, labels: y, groups: g)
        #expect(abs(r.value! - (4 * 1.0 + 2 * 0.0) / 6) < 1e-12)
        #expect(r.weight == 6 && r.groups == 2)
    }

    @Test("logloss and ECE by hand")
    func loglossAndECE() {
        let p: [Double] = [0.9, 0.2, 0.6, 0.6]
        let y = [true, false, true, false]
        let expected = -(log(0.9) + log(0.8) + log(0.6) + log(0.4)) / 4
        #expect(abs(ClassificationMetrics.logloss(probabilities: p, labels: y) - expected) < 1e-12)
        // Clipping keeps p = 0 on a positive finite.
        #expect(ClassificationMetrics.logloss(probabilities: [0.0], labels: [true]).isFinite)
        // 2 bins: [0, 0.5): {0.2 → 0}: |0 − 0.2| · 1/4; [0.5, 1]: {0.9, 0.6, 0.6 → 1, 1, 0}: |2 − 2.1| / 4.
        #expect(abs(ClassificationMetrics.ece(probabilities: p, labels: y, bins: 2) - (0.2 / 4 + 0.1 / 4)) < 1e-12)
        // Perfectly calibrated constant predictions have ECE 0.
        #expect(
            ClassificationMetrics.ece(probabilities: [0.25, 0.25, 0.25, 0.25], labels: [true, false, false, false]) == 0
        )
    }

    @Test("oracle report: true probabilities beat noisy ones on labels drawn from them")
    func oracle() {
        var r = RandomStream(seed: 11)
        let n = 20_000
        let p = (0..<n).map { _ in 0.02 + 0.5 * r.uniform() * r.uniform() }
        let y = p.map { r.uniform() < $0 }
        let g = (0..<n).map { Int64($0 % 200) }
        let noisy = p.map { min(0.99, max(0.01, $0 + 0.15 * (r.uniform() - 0.5))) }
        let oracle = ClassificationMetrics.report(probabilities: p, labels: y, groups: g)
        let model = ClassificationMetrics.report(probabilities: noisy, labels: y, groups: g)
        #expect(oracle.auc! > model.auc!)
        #expect(oracle.logloss < model.logloss)
        #expect(oracle.ece < 0.02)
    }
}

@Suite("Ranking metrics and protocols")
struct RankingMetricsTests {
    @Test("single-target HR, NDCG and MRR by hand")
    func singleTarget() {
        #expect(RankingMetrics.hit(rank: 9, k: 10) == 1 && RankingMetrics.hit(rank: 10, k: 10) == 0)
        #expect(RankingMetrics.ndcg(rank: 0, k: 10) == 1)
        #expect(abs(RankingMetrics.ndcg(rank: 2, k: 10) - 0.5) < 1e-12)  // 1/log2(4)
        #expect(RankingMetrics.ndcg(rank: 10, k: 10) == 0)
        #expect(RankingMetrics.reciprocalRank(rank: 3) == 0.25)
    }

    @Test("list metrics by hand: recall, NDCG with several relevant items, MRR, coverage, diversity")
    func lists() {
        let ranked = [7, 3, 9, 1, 4]
        let relevant: Set = [3, 4, 8]
        #expect(RankingMetrics.hitRate(ranked: ranked, relevant: relevant, k: 1) == 0)
        #expect(RankingMetrics.hitRate(ranked: ranked, relevant: relevant, k: 2) == 1)
        #expect(abs(RankingMetrics.recall(ranked: ranked, relevant: relevant, k: 5) - 2.0 / 3) < 1e-12)
        // DCG = 1/log2(3) + 1/log2(6); IDCG (3 relevant, k = 5) = 1 + 1/log2(3) + 1/2.
        let dcg = 1 / log2(3.0) + 1 / log2(6.0), idcg = 1 + 1 / log2(3.0) + 0.5
        #expect(abs(RankingMetrics.ndcg(ranked: ranked, relevant: relevant, k: 5) - dcg / idcg) < 1e-12)
        #expect(RankingMetrics.reciprocalRank(ranked: ranked, relevant: relevant) == 0.5)
        #expect(RankingMetrics.coverage(lists: [[1, 2, 3], [3, 4, 5]], k: 2, catalogueSize: 10) == 0.4)
        let e: [[Float]] = [[1, 0], [0, 1], [1, 0]]
        // Pairs: (0,1) 1 − 0, (0,2) 1 − 1, (1,2) 1 − 0 → 2/3.
        #expect(abs(RankingMetrics.intraListDiversity([0, 1, 2]) { e[$0] } - 2.0 / 3) < 1e-9)
        #expect(abs(RankingMetrics.categoryDiversity([0, 1, 2]) { [5, 6, 5][$0] } - 2.0 / 3) < 1e-12)
    }

    @Test("rank with ties: optimistic, pessimistic, average; and against a brute-force sort")
    func ranks() {
        let others: [Float] = [0.9, 0.5, 0.5, 0.1]
        #expect(RankingProtocol.rank(target: 0.5, others: others, ties: .optimistic) == 1)
        #expect(RankingProtocol.rank(target: 0.5, others: others, ties: .pessimistic) == 3)
        #expect(RankingProtocol.rank(target: 0.5, others: others, ties: .average) == 2)
        var r = RandomStream(seed: 5)
        for _ in 0..<50 {
            let scores = (0..<40).map { _ in Float(r.uniform()) }
            let target = 1 + r.int(below: 39)
            let exclude = Set((0..<5).map { _ in 1 + r.int(below: 39) }).subtracting([target])
            let rank = RankingProtocol.fullRank(scores: scores, target: target, exclude: exclude)
            // Brute force: sort the remaining items by score descending, find the target.
            let items = (1..<40).filter { !exclude.contains($0) }.sorted { scores[$0] > scores[$1] }
            #expect(Int(rank) == items.firstIndex(of: target)!)
        }
    }

    @Test("sampled negatives: 100 per user, none from the rejection set, deterministic per user")
    func sampledNegatives() {
        let rejection: Set = [1, 2, 3, 50]
        let a = RankingProtocol.sampleNegatives(user: 7, itemCount: 60, rejection: rejection)
        #expect(a.count == 100 && a.allSatisfy { (1...60).contains($0) && !rejection.contains($0) })
        #expect(a == RankingProtocol.sampleNegatives(user: 7, itemCount: 60, rejection: rejection))
        #expect(a != RankingProtocol.sampleNegatives(user: 8, itemCount: 60, rejection: rejection))
        // A scorer that knows the target ranks it first; a constant scorer ties (optimistic rank 0,
        // pessimistic 100).
        let target = 4
        #expect(RankingProtocol.sampledRank(target: target, negatives: a) { $0.map { $0 == target ? 1 : 0 } } == 0)
        #expect(
            RankingProtocol.sampledRank(target: target, negatives: a, ties: .pessimistic) { $0.map { _ in 0 } } == 100)
    }

    @Test("rank accumulator averages per user and merges shards exactly")
    func accumulator() {
        var all = RankAccumulator(cutoffs: [1, 10])
        var a = RankAccumulator(cutoffs: [1, 10]), b = RankAccumulator(cutoffs: [1, 10])
        for (i, rank) in [0.0, 3, 12, 1, 0].enumerated() {
            all.add(rank: rank)
            if i % 2 == 0 { a.add(rank: rank) } else { b.add(rank: rank) }
        }
        a.merge(b)
        #expect(a.sums == all.sums)
        #expect(RankAccumulator(cutoffs: [1, 10], sums: all.sums).sums == all.sums)
        #expect(all.hitRate(1) == 0.4 && all.hitRate(10) == 0.8)
        let ndcg10 = (1 + 1 / log2(5.0) + 0 + 1 / log2(3.0) + 1) / 5
        #expect(abs(all.ndcg(10) - ndcg10) < 1e-12)
        #expect(abs(all.mrr - (1 + 0.25 + 1.0 / 13 + 0.5 + 1) / 5) < 1e-12)
    }
}

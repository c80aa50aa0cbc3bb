import Foundation

/// Top-K metrics of ranked lists. Ranks are 0-based (0 = first).
public enum RankingMetrics {
    /// 1 when a single target at `rank` is in the top `k`.
    public static func hit(rank: Double, k: Int) -> Double { rank < Double(k) ? 1 : 0 }

    /// NDCG@k of a single target at `rank`: 1 / log2(rank + 2) inside the top k, else 0 (the
    /// ideal DCG of one relevant item is 1).
    public static func ndcg(rank: Double, k: Int) -> Double { rank < Double(k) ? 1 / Foundation.log2(rank + 2) : 0 }

    /// Reciprocal rank 1 / (rank + 1) of a single target.
    public static func reciprocalRank(rank: Double) -> Double { 1 / (rank + 1) }

    /// HR@k of a ranked list: 1 when any relevant item is in its first `k`.
    public static func hitRate(ranked: [Int], relevant: Set<Int>, k: Int) -> Double {
        ranked.prefix(k).contains(where: relevant.contains) ? 1 : 0
    }

    /// Recall@k: the fraction of relevant items in the first `k` (0 when nothing is relevant).
    public static func recall(ranked: [Int], relevant: Set<Int>, k: Int) -> Double {
        guard !relevant.isEmpty else { return 0 }
        return Double(Set(ranked.prefix(k)).intersection(relevant).count) / Double(relevant.count)
    }

    /// NDCG@k with binary gains: DCG = Σ_{i<k, item relevant} 1/log2(i + 2), divided by the DCG of
    /// the ideal list (all relevant first, min(|relevant|, k) of them).
    public static func ndcg(ranked: [Int], relevant: Set<Int>, k: Int) -> Double {
        guard !relevant.isEmpty else { return 0 }
        var dcg = 0.0
        for (i, item) in ranked.prefix(k).enumerated() where relevant.contains(item) {
            dcg += 1 / Foundation.log2(Double(i) + 2)
        }
        var ideal = 0.0
        for i in 0..<min(k, relevant.count) { ideal += 1 / Foundation.log2(Double(i) + 2) }
        return dcg / ideal
    }

    /// Reciprocal rank of the first relevant item (0 when none is ranked).
    public static func reciprocalRank(ranked: [Int], relevant: Set<Int>) -> Double {
        guard let i = ranked.firstIndex(where: relevant.contains) else { return 0 }
        return 1 / Double(i + 1)
    }

    /// Catalogue coverage: distinct items recommended in the first `k` of any list, over the
    /// catalogue size.
    public static func coverage(lists: [[Int]], k: Int, catalogueSize: Int) -> Double {
        precondition(catalogueSize > 0)
        var seen = Set<Int>()
        for l in lists { seen.formUnion(l.prefix(k)) }
        return Double(seen.count) / Double(catalogueSize)
    }

    /// Intra-list diversity of one list: the mean over item pairs of 1 − cosine similarity of
    /// their embeddings (`embedding(item)` gives a vector; all of one width). 0 for lists of < 2.
    public static func intraListDiversity(_ list: [Int], embedding: (Int) -> [Float]) -> Double {
        guard list.count >= 2 else { return 0 }
        let v = list.map(embedding)
        let norms = v.map { x in x.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot() }
        var sum = 0.0, pairs = 0.0
        for a in 0..<v.count {
            for b in (a + 1)..<v.count {
                var dot: Float = 0
                for j in 0..<v[a].count { dot += v[a][j] * v[b][j] }
                let cos = norms[a] > 0 && norms[b] > 0 ? Double(dot / (norms[a] * norms[b])) : 0
                sum += 1 - cos
                pairs += 1
            }
        }
        return sum / pairs
    }

    /// Intra-list diversity by category: the fraction of item pairs whose categories differ.
    public static func categoryDiversity(_ list: [Int], category: (Int) -> Int) -> Double {
        guard list.count >= 2 else { return 0 }
        let c = list.map(category)
        var differ = 0, pairs = 0
        for a in 0..<c.count { for b in (a + 1)..<c.count { differ += c[a] != c[b] ? 1 : 0; pairs += 1 } }
        return Double(differ) / Double(pairs)
    }
}

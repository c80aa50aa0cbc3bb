import Foundation

/// Directed item-to-item transitions in the users' training sequences: a sequential count model
/// (next-item Markov counts widened to a window, as session-kNN methods do), the strongest simple
/// baseline on S3-Rec Beauty.
///
/// For every training sequence and every pair of positions `p < q` with `q - p ≤ window`, the
/// pair (item at `p` → item at `q`) adds `decay^(q-p-1)` and the reverse pair adds
/// `backward · decay^(q-p-1)`. The similarity of a query item `i` to an item `j` is
/// `T(i, j) / (Σ_j' T(i, j'))^rowExponent / count(j)^popularityExponent`, where `count(j)` is the
/// item's occurrences in the training sequences. A query is the last `recent` items, the most
/// recent weighted 1 and each older one `recencyDecay` times the next.
public struct TransitionSimilarity: ItemSimilarity {
    /// The model's settings; the defaults were chosen on S3-Rec Beauty's validation targets
    /// (docs/quality.md), never on its test targets.
    public struct Config: Sendable, Equatable {
        /// Largest gap (in positions) between two items that counts as a transition.
        public var window = 8
        /// Weight factor per extra position of gap.
        public var decay: Float = 0.8
        /// Weight of the reverse direction (the later item predicting the earlier one).
        public var backward: Float = 0.3
        /// Exponent of the query item's total transition mass in the normaliser (0: raw counts,
        /// 1: transition probabilities).
        public var rowExponent: Float = 0.25
        /// Exponent of the candidate's occurrence count in the normaliser (damps popular items).
        public var popularityExponent: Float = 0.05
        /// Items of the user's sequence used as the query, most recent first.
        public var recent = 5
        /// Weight ratio between consecutive query items (older / newer).
        public var recencyDecay: Float = 0.6

        public init() {}
    }

    public let config: Config
    /// CSR rows: `offsets[i] ..< offsets[i + 1]` index `columns` / `values` of item `i`.
    let offsets: [Int]
    let columns: [Int32]
    let values: [Float]

    /// Counts over `sequences` (each a user's training items in time order; ids in
    /// `1 ... itemCount`, others ignored). Memory: O(distinct transitions).
    public init(sequences: [[Int]], itemCount: Int, config: Config = Config()) {
        precondition(config.window >= 1 && config.recent >= 1, "window and recent must be at least 1")
        self.config = config
        var rows = [[Int32: Float]](repeating: [:], count: itemCount + 1)
        var count = [Float](repeating: 0, count: itemCount + 1)
        for sequence in sequences {
            let items = sequence.filter { $0 >= 1 && $0 <= itemCount }
            for (p, a) in items.enumerated() {
                count[a] += 1
                var w: Float = 1
                for q in (p + 1)..<min(items.count, p + config.window + 1) {
                    let b = items[q]
                    rows[a][Int32(b), default: 0] += w
                    if config.backward > 0 { rows[b][Int32(a), default: 0] += config.backward * w }
                    w *= config.decay
                }
            }
        }
        let damp = count.map { $0 > 0 ? 1 / Foundation.pow($0, config.popularityExponent) : 0 }
        var offsets = [0]
        var columns: [Int32] = []
        var values: [Float] = []
        for row in rows {
            let mass = row.values.reduce(0, +)
            let scale = mass > 0 ? 1 / Foundation.pow(mass, config.rowExponent) : 0
            for (j, t) in row.sorted(by: { $0.key < $1.key }) {
                columns.append(j)
                values.append(t * scale * damp[Int(j)])
            }
            offsets.append(columns.count)
        }
        self.offsets = offsets
        self.columns = columns
        self.values = values
    }

    public func addScores(of item: Int, weight: Float, into scores: inout [Float]) {
        guard item >= 0 && item + 1 < offsets.count else { return }
        for k in offsets[item]..<offsets[item + 1] where Int(columns[k]) < scores.count {
            scores[Int(columns[k])] += weight * values[k]
        }
    }

    /// The model's own query: `config.recent` items weighted `recencyDecay^k` (the `recent` of
    /// the evaluation is ignored).
    public func queryWeights(recent: Int) -> [Float] {
        (0..<config.recent).map { Foundation.pow(config.recencyDecay, Float($0)) }
    }
}

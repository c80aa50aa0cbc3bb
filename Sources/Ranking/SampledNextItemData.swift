import EventData
import Evaluation
import Foundation
import Linalg

/// A ranker's data under SASRec's sampled-negatives protocol (leave-one-out; the target
/// against 100 items sampled uniformly outside the user's training items), built from users'
/// item sequences (`ItemSequences`).
///
/// - Training: every training action (all but each eligible user's last two) is a positive
///   (user, item, the items before it); one negative per positive is drawn uniformly from
///   items the user never touched (seeded by user and position). Fields: user, item.
/// - Validation: the second-last item against its 100 negatives, for `validUsers` users.
/// - Test: the last item against 100 negatives (`RankingProtocol.sampleNegatives`), history =
///   training items + the validation item, for `evalUsers` users sampled with seed 2018.
/// Histories are the user's items as `save` events at k·1000 ms, all in one category (the
/// datasets have neither categories nor content, so SIM's hard search keeps the last K).
public struct SampledNextItemData {
    public var train: CTRData, valid: CTRData, test: CTRData
    /// Test users (sequence indices), in the order of `test`'s blocks of 101 rows.
    public var testUsers: [Int]
    /// Embedding rows the ids need (users, then items after `itemBase`).
    public var tableRows: Int

    /// Builds the three sets from `sequences` (items `1 ... itemCount`).
    public init(sequences seqs: [[Int]], itemCount maxItem: Int, evalUsers: Int, validUsers: Int) {
        let users = seqs.count, itemBase = users + 1
        let eligible = (0..<users).filter { seqs[$0].count >= 3 }
        func trainLength(_ u: Int) -> Int { seqs[u].count >= 3 ? seqs[u].count - 2 : seqs[u].count }
        var offsets = [0], hPin: [Int64] = [], hTime: [Int64] = []
        for s in seqs {
            for (k, i) in s.enumerated() {
                hPin.append(Int64(itemBase + i))
                hTime.append(Int64(k) * 1000)
            }
            offsets.append(hPin.count)
        }
        let hType = [UInt8](repeating: EventType.save.rawValue, count: hPin.count)
        let hCat = [Int32](repeating: 0, count: hPin.count)
        typealias Row = (user: Int, item: Int, position: Int, label: Float)
        func dataset(_ rows: [Row]) -> CTRData {
            var d = CTRData(
                fields: 2, ids: rows.flatMap { [Int64($0.user), Int64(itemBase + $0.item)] },
                labels: [rows.map(\.label)])
            d.groups = rows.map { Int64($0.user) }
            d.sequences = SequenceSource(
                offsets: offsets, pin: hPin, type: hType, time: hTime, category: hCat, pinEmbedding: [], width: 0,
                exampleUser: rows.map(\.user), exampleTime: rows.map { Int64($0.position) * 1000 },
                exampleCategory: [Int32](repeating: 0, count: rows.count))
            return d
        }
        var trainRows: [Row] = []
        for u in 0..<users {
            let all = Set(seqs[u])
            for t in 0..<trainLength(u) {
                trainRows.append((u, seqs[u][t], t, 1))
                var r = RandomStream(seed: 77, rank: UInt64(u), index: UInt64(t))
                var negative = 1 + r.int(below: maxItem)
                while all.contains(negative) { negative = 1 + r.int(below: maxItem) }
                trainRows.append((u, negative, t, 0))
            }
        }
        var pick = RandomStream(seed: 2018)
        var order = eligible
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, pick.int(below: i + 1)) }
        let testUsers = evalUsers > 0 ? Array(order.prefix(evalUsers)) : eligible
        let validSet = Array(order.suffix(min(validUsers, order.count)))
        func candidates(_ us: [Int], valid: Bool) -> [Row] {
            var rows: [Row] = []
            for u in us {
                let n = seqs[u].count, pos = valid ? n - 2 : n - 1
                let negatives = RankingProtocol.sampleNegatives(
                    user: Int64(u + (valid ? 1_000_000 : 0)), itemCount: maxItem,
                    rejection: Set(seqs[u][0..<(n - 2)]))
                rows.append((u, seqs[u][pos], pos, 1))
                for i in negatives { rows.append((u, i, pos, 0)) }
            }
            return rows
        }
        train = dataset(trainRows)
        valid = dataset(candidates(validSet, valid: true))
        test = dataset(candidates(testUsers, valid: false))
        self.testUsers = testUsers
        tableRows = itemBase + maxItem + 1
    }

    /// HR / NDCG at `cutoffs` of the test logits (one task; blocks of 101 rows, the target
    /// first; ties optimistic: rank = negatives scoring strictly higher).
    public func evaluate(testLogits z: [Float], cutoffs: [Int] = [10]) -> RankAccumulator {
        var acc = RankAccumulator(cutoffs: cutoffs)
        for k in testUsers.indices {
            let s = z[(k * 101)..<((k + 1) * 101)]
            acc.add(rank: RankingProtocol.rank(target: s.first!, others: s.dropFirst(), ties: .optimistic))
        }
        return acc
    }
}

import Collective
import Evaluation
import EventData
import Events
import Foundation
import Testing
import _TestSupport

/// ../shared/data relative to this package (or $MOSAIC_SHARED); nil when absent.
let sharedData: URL? = SharedData.root(
    packageRoot: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path)

/// Leave-one-out sequences of a converted dataset: for each user with ≥ 3 actions, the training
/// prefix, the validation item and the test item.
func leaveOneOutSequences(_ events: Table) -> [(user: Int64, train: [Int], validation: Int, test: Int)] {
    let pins = events.i64("pin_id")
    return Splits.userRanges(events).compactMap { user, rows in
        let items = rows.map { Int(pins[$0]) }
        guard items.count >= 3 else { return nil }
        return (user, Array(items.dropLast(2)), items[items.count - 2], items[items.count - 1])
    }
}

@Suite(
    "Real-data adapters and protocols (../shared/data)",
    .enabled(if: sharedData != nil, "../shared/data is absent (set MOSAIC_SHARED): skipping the real-data tests"))
struct RealDataTests {
    @Test("Amazon Games: README statistics, and popularity under the sampled-negatives protocol matches the reference")
    func amazonGames() throws {
        let c = try RealDataAdapter.amazonGames(path: sharedData!.appendingPathComponent("amazon-games/Video.txt").path)
        #expect(c.totalUsers == 31_013 && c.totalItems == 23_715 && c.totalActions == 287_107)
        #expect(c.events.count == 287_107 && c.pins.count == 23_715 && c.users.count == 31_013)
        let seqs = leaveOneOutSequences(c.events)
        #expect(seqs.count == 30_901, "users with ≥ 3 actions")
        var popularity = [Float](repeating: 0, count: c.totalItems + 1)
        for s in seqs { for i in s.train { popularity[i] += 1 } }
        for (_, rows) in Splits.userRanges(c.events) where rows.count < 3 {
            for r in rows { popularity[Int(c.events.i64("pin_id")[r])] += 1 }
        }
        var acc = RankAccumulator(cutoffs: [10])
        for s in seqs {
            let negatives = RankingProtocol.sampleNegatives(
                user: s.user, itemCount: c.totalItems, rejection: Set(s.train))
            acc.add(
                rank: RankingProtocol.sampledRank(target: s.test, negatives: negatives) { $0.map { popularity[$0] } })
        }
        // README reference: popularity HR@10 0.4765 / NDCG@10 0.2785 (ties move HR by ±0.005).
        #expect(abs(acc.hitRate(10) - 0.4765) < 0.015, "HR@10 \(acc.hitRate(10))")
        #expect(abs(acc.ndcg(10) - 0.2785) < 0.015, "NDCG@10 \(acc.ndcg(10))")
        print(
            "amazon-games popularity (sampled, optimistic ties): HR@10 \(acc.hitRate(10)) NDCG@10 \(acc.ndcg(10)) users \(acc.users)"
        )
    }

    @Test("Beauty: README statistics, attributes as categories, and train-only popularity under full ranking")
    func beauty() throws {
        let dir = sharedData!.appendingPathComponent("s3rec-beauty")
        let c = try RealDataAdapter.beauty(
            path: dir.appendingPathComponent("Beauty.txt").path,
            attributesPath: dir.appendingPathComponent("Beauty_item2attributes.json").path)
        #expect(c.totalUsers == 22_363 && c.totalItems == 12_101 && c.totalActions == 198_502)
        let tags = c.pins.int32["tags"]!
        let perItem = (0..<c.pins.count).map { p in (0..<8).filter { tags[p * 8 + $0] >= 0 }.count }
        #expect(abs(Double(perItem.reduce(0, +)) / Double(c.pins.count) - 3.72) < 0.01, "attributes per item")
        #expect(Set(tags.filter { $0 >= 0 }).count == 637)
        let category = c.pins.int32["category"]!
        for p in 0..<c.pins.count { #expect(tags[(p * 8)..<(p * 8 + 8)].contains(category[p])) }
        let seqs = leaveOneOutSequences(c.events)
        #expect(seqs.count == 22_363)
        var popularity = [Float](repeating: 0, count: c.totalItems + 1)
        for s in seqs { for i in s.train { popularity[i] += 1 } }
        var acc = RankAccumulator(cutoffs: [10, 20])
        for s in seqs {
            acc.add(
                rank: RankingProtocol.fullRank(
                    scores: popularity, target: s.test, exclude: Set(s.train + [s.validation])))
        }
        // README reference: training-only popularity HR@10 0.0115 / NDCG@10 0.0054.
        #expect(abs(acc.hitRate(10) - 0.0115) < 0.002, "HR@10 \(acc.hitRate(10))")
        #expect(abs(acc.ndcg(10) - 0.0054) < 0.0015, "NDCG@10 \(acc.ndcg(10))")
        print("beauty popularity (full ranking, train only): HR@10 \(acc.hitRate(10)) NDCG@10 \(acc.ndcg(10))")
    }

    @Test("Frappe: row counts, positives as clicks, and a time cut reproduces the BARS split")
    func frappe() throws {
        let c = try RealDataAdapter.frappe(directory: sharedData!.appendingPathComponent("frappe").path)
        #expect(c.totalActions == 288_609 && c.totalUsers == 957)
        let type = c.events.uint8["event_type"]!
        #expect(type.filter { $0 == EventType.impression.rawValue }.count == 288_609)
        #expect(type.filter { $0 == EventType.click.rawValue }.count == 67_604 + 19_063 + 9_536)
        let split = c.extraEventColumns["split"]!.values
        let impressions = (0..<c.events.count).filter { type[$0] == EventType.impression.rawValue }
        // Time cut at the first valid row's timestamp: train before, valid + test after.
        let parts = Splits.byTime(
            c.events, validationCutMs: 1_000_000_000_000 + 202_027 * 1000,
            testCutMs: 1_000_000_000_000 + (202_027 + 57_722) * 1000)
        for i in impressions { #expect(Int32(parts[i].rawValue) == split[i]) }
        #expect(impressions.filter { split[$0] == 2 }.count == 28_860)
        // Labels: an impression is positive iff it has a click.
        let labels = ImpressionLabels.compute(c.events)
        #expect(impressions.filter { ImpressionLabels.has(labels[$0], .click) }.count == 96_203)
    }
}

@Suite(
    "Adapters under mpirun", .serialized,
    .enabled(if: MPIRun.mpirunAvailable && sharedData != nil, "needs mpirun and ../shared/data"))
struct MultiRankAdapterTests {
    @Test("mosaic adapt writes the same dataset with 1, 2 and 4 ranks", arguments: ["amazon-games"])
    func adaptIsRankIndependent(dataset: String) throws {
        let dir = try MPIRun.temporaryDirectory("adapt")
        var reference: [String]? = nil
        for ranks in [1, 2, 4] {
            let out = dir.appendingPathComponent("r\(ranks)")
            let stdout = try runMosaic(ranks, ["adapt", dataset, "--shared", sharedData!.path, "--out", out.path])
            #expect(stdout.contains("ADAPT dataset=\(dataset)"))
            let d = try digestLines(out)
            #expect(d.count == 3)
            if let reference { #expect(d == reference, "\(ranks) ranks") } else { reference = d }
        }
    }
}

import Evaluation
import _TestSupport
import EventData
import Events
import Foundation
import Linalg
import Testing

/// Random events for `users` users with many timestamp ties, sorted by (user, time).
func randomEvents(users: Int, perUser: Int, seed: UInt64) -> Table {
    var t = Table(schema: .events)
    var rows: [(Int64, Int64, Int64, UInt8, Int64)] = []  // user, ts, pin, type, session
    for u in 0..<users {
        var r = RandomStream(seed: seed, index: UInt64(u))
        for _ in 0..<perUser + r.int(below: perUser) {
            rows.append(
                (
                    Int64(u), 1_000 + Int64(r.int(below: 50)) * 10, Int64(r.int(below: 30)), UInt8(r.int(below: 5)),
                    Int64(r.int(below: 4))
                ))
        }
    }
    rows.sort { ($0.0, $0.1) < ($1.0, $1.1) }
    t.int64["event_id"] = (0..<rows.count).map(Int64.init)
    t.int64["user_id"] = rows.map(\.0); t.int64["timestamp_ms"] = rows.map(\.1); t.int64["pin_id"] = rows.map(\.2)
    t.uint8["event_type"] = rows.map(\.3); t.int64["session_id"] = rows.map(\.4)
    t.int32["position"] = [Int32](repeating: 0, count: rows.count);
    t.uint8["surface"] = [UInt8](repeating: 0, count: rows.count)
    t.setCount(rows.count)
    return t
}

@Suite("Splits and point-in-time features")
struct FeatureTests {
    @Test("leakage: no feature of an example uses an event at or after its label time, and nothing earlier is missed")
    func noLeakage() {
        let events = randomEvents(users: 30, perUser: 60, seed: 3)
        let type = events.uint8["event_type"]!, ts = events.i64("timestamp_ms"), user = events.i64("user_id")
        let impressions = (0..<events.count).filter { type[$0] == EventType.impression.rawValue }
        let builder = SequenceFeatureBuilder(longLength: 25, shortLength: 5)
        let f = builder.build(events, examples: impressions)
        #expect(f.count == impressions.count)
        var nonEmpty = 0
        for e in 0..<f.count {
            let row = f.exampleRow[e], t = f.labelTimestamp[e]
            #expect(t == ts[row])
            let long = f.longOffsets[e]..<f.longOffsets[e + 1], short = f.shortOffsets[e]..<f.shortOffsets[e + 1]
            for j in long { #expect(f.longTimestamp[j] < t && user[f.longRow[j]] == user[row]) }
            for j in short { #expect(f.shortTimestamp[j] < t) }
            // Brute force: the last 25 engagement events of the user strictly before t.
            let expected = (0..<events.count).filter {
                user[$0] == user[row] && ts[$0] < t && type[$0] != EventType.impression.rawValue
            }.suffix(25)
            #expect(Array(f.longRow[long]) == Array(expected))
            #expect(Array(f.shortRow[short]) == Array(expected.suffix(5)))
            if !long.isEmpty { nonEmpty += 1 }
        }
        #expect(nonEmpty > f.count / 2)
    }

    @Test("features of a generated world: long sequences reach thousands for power users, all before the label")
    func generatedWorld() {
        let g = WorldGenerator(smallWorld(users: 61, powerEvery: 60))
        let events = g.users(Array(0..<61)).events
        let type = events.uint8["event_type"]!, ts = events.i64("timestamp_ms")
        let labels = ImpressionLabels.compute(events)
        let examples = (0..<events.count).filter { type[$0] == EventType.impression.rawValue }
        let f = SequenceFeatureBuilder(longLength: 5_000, shortLength: 20).build(events, examples: examples)
        var longest = 0
        for e in 0..<f.count {
            longest = max(longest, f.longOffsets[e + 1] - f.longOffsets[e])
            #expect(f.shortOffsets[e + 1] - f.shortOffsets[e] <= 20)
            if let last = f.longTimestamp[f.longOffsets[e]..<f.longOffsets[e + 1]].last {
                #expect(last < ts[f.exampleRow[e]])
            }
        }
        #expect(longest >= 1_000, "a power user's long sequence: \(longest)")
        // Labels: (almost) every closeup credits one impression (a pin shown twice in a row in a
        // session may take its neighbour's credit).
        let closeups = (0..<events.count).filter { type[$0] == EventType.closeup.rawValue }.count
        let labelled = examples.filter { ImpressionLabels.has(labels[$0], .closeup) }.count
        #expect(labelled <= closeups && labelled * 100 >= closeups * 95, "\(labelled) labelled, \(closeups) closeups")
    }

    @Test("time split and leave-one-out: targets are each user's last interactions, nothing in train is after them")
    func splits() {
        let events = randomEvents(users: 20, perUser: 30, seed: 9)
        let type = events.uint8["event_type"]!, ts = events.i64("timestamp_ms"), user = events.i64("user_id")
        let parts = Splits.byTime(events, validationCutMs: 1_200, testCutMs: 1_300)
        for i in 0..<events.count {
            #expect(parts[i] == (ts[i] < 1_200 ? .train : ts[i] < 1_300 ? .validation : .test))
        }
        let (loo, targets) = Splits.leaveOneOut(events, targets: [.save])
        #expect(!targets.isEmpty)
        for (u, v, t) in targets {
            let saves = (0..<events.count).filter { user[$0] == u && type[$0] == EventType.save.rawValue }
            #expect(saves.last == t && saves.dropLast().last == v)
            #expect(loo[t] == .test && loo[v] == .validation)
            for i in 0..<events.count where user[i] == u && loo[i] == .train { #expect(ts[i] <= ts[v] && i < v) }
        }
        // Users with fewer than three saves are all train.
        for (u, rows) in Splits.userRanges(events) where !targets.contains(where: { $0.user == u }) {
            #expect(rows.allSatisfy { loo[$0] == .train })
        }
    }
}

@Suite("Oracle metrics of the synthetic world")
struct OracleTests {
    @Test("the stored true probabilities are calibrated and beat a constant predictor on the realised labels")
    func oracle() throws {
        let g = WorldGenerator(smallWorld(users: 300, powerEvery: 0))
        let events = g.users(Array(0..<300)).events
        let type = events.uint8["event_type"]!, pc = events.float32["p_closeup"]!, ps = events.float32["p_save"]!
        let users = events.i64("user_id")
        let labels = ImpressionLabels.compute(events)
        let rows = (0..<events.count).filter { type[$0] == EventType.impression.rawValue }
        let y = rows.map { ImpressionLabels.has(labels[$0], .closeup) }
        let oracle = ClassificationMetrics.report(
            probabilities: rows.map { pc[$0] }, labels: y, groups: rows.map { users[$0] })
        let rate = Float(y.filter { $0 }.count) / Float(y.count)
        let constant = ClassificationMetrics.report(
            probabilities: rows.map { _ in rate }, labels: y, groups: rows.map { users[$0] })
        #expect(oracle.auc! > 0.7, "\(oracle)")
        #expect(oracle.gauc! > 0.6, "\(oracle)")
        #expect(oracle.ece < 0.02, "\(oracle)")
        #expect(oracle.logloss < constant.logloss - 0.02, "\(oracle) vs \(constant)")
        // Saves: rarer, and also predicted by their true probability.
        let ySave = rows.map { ImpressionLabels.has(labels[$0], .save) }
        let saves = ClassificationMetrics.report(
            probabilities: rows.map { ps[$0] }, labels: ySave, groups: rows.map { users[$0] })
        #expect(saves.positives < oracle.positives / 2 && saves.auc! > 0.7, "\(saves)")
    }
}

@Suite("Features under mpirun", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct MultiRankFeatureTests {
    @Test("labels and point-in-time features of a generated world are the same on 1, 2 and 4 ranks, with no leak")
    func featuresAreRankIndependent() throws {
        let dir = try MPIRun.temporaryDirectory("features")
        _ = try runMosaic(2, ["generate", "--out", dir.path] + smallGenerateArgs)
        var reference: String? = nil
        for ranks in [1, 2, 4] {
            let r = try MPIRun.selftest(ranks: ranks, ["features", "--data", dir.path, "--long", "500"])
            #expect(r.status == 0, "selftest features on \(ranks) ranks: \(r.output)")
            let line = r.stdout
                .split(separator: "\n").first { $0.hasPrefix("FEATURES") }.map(String.init)
            let l = try #require(line)
            #expect(!l.contains("examples=0 "))
            if let reference { #expect(l == reference, "\(ranks) ranks") } else { reference = l }
        }
    }
}

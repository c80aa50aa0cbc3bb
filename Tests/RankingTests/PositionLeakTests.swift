import Events
import Foundation
import Linalg
import Testing
import _TestSupport

@testable import RankerInference
@testable import Ranking

/// The position leak of the DIN/SIM variants: features taken at each slot's display time include
/// the same feed's engagements on earlier slots, which encode the slot; features as of the feed
/// request (the default) do not.
@Suite("Position leak through sequence features")
struct PositionLeakTests {
    static func pearson(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count), ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for i in a.indices {
            sab += (a[i] - ma) * (b[i] - mb); saa += (a[i] - ma) * (a[i] - ma); sbb += (b[i] - mb) * (b[i] - mb)
        }
        return sab / max((saa * sbb).squareRoot(), 1e-300)
    }

    /// Per test example: its logged position, the user's engagement events in the minute before
    /// the feature time among the last 20 (what DIN's time bucket 0 sees), and log activity.
    static func features(_ ft: WorldExamples.FeatureTime) -> (position: [Double], recent: [Double], activity: [Double])
    {
        var wp = WorldParameters()
        wp.users = 150; wp.days = 6; wp.initialPins = 1_500; wp.freshPinsPerDay = 50
        let w = WorldExamples.build(wp, featureTime: ft)
        let d = w.train, s = d.sequences!
        var recent: [Double] = [], activity: [Double] = []
        for i in 0..<d.count {
            let u = s.exampleUser[i], t = s.exampleTime[i]
            let e = s.end(user: u, before: t)
            recent.append(Double((max(s.offsets[u], e - 20)..<e).filter { t - s.time[$0] < 60_000 }.count))
            activity.append(Double(d.dense[i * d.denseWidth + 1]))
        }
        return (d.positions.map(Double.init), recent, activity)
    }

    @Test("display-time features encode the slot (recent in-feed events, activity); request-time features do not")
    func featuresEncodePosition() {
        let leaky = Self.features(.impression), fixed = Self.features(.request)
        let leakyRecent = Self.pearson(leaky.recent, leaky.position)
        let leakyActivity = Self.pearson(leaky.activity, leaky.position)
        let fixedRecent = Self.pearson(fixed.recent, fixed.position)
        let fixedActivity = Self.pearson(fixed.activity, fixed.position)
        #expect(leakyRecent > 0.2, "display time: corr(recent events, position) \(leakyRecent)")
        #expect(abs(fixedRecent) < 0.03, "request time: corr(recent events, position) \(fixedRecent)")
        // (Activity is a user-level feature: which users reach deep slots gives it a small
        // correlation with position even at request time; the display time adds the feed's own
        // events on top.)
        #expect(leakyActivity > fixedActivity + 0.02, "activity: display \(leakyActivity), request \(fixedActivity)")
    }

    @Test("every impression of one feed request has the same sequence features and feature time")
    func sameFeaturesPerRequest() {
        var wp = WorldParameters()
        wp.users = 60; wp.days = 6; wp.initialPins = 800; wp.freshPinsPerDay = 20
        let w = WorldExamples.build(wp, featureTime: .request)
        let d = w.train, s = d.sequences!
        // Each slot's feature time is the time of its feed's slot 0 (the request), never its own.
        struct Key: Hashable { let user: Int, time: Int64 }
        var requests = Set<Key>()
        for i in 0..<d.count where d.positions[i] == 0 {
            requests.insert(Key(user: s.exampleUser[i], time: s.exampleTime[i]))
        }
        var checked = 0
        for i in 0..<d.count where d.positions[i] > 0 {
            #expect(requests.contains(Key(user: s.exampleUser[i], time: s.exampleTime[i])), "example \(i)")
            checked += 1
        }
        #expect(checked > 100)
    }
}

@Suite(
    "Position leak: trained DIN/SIM rankers", .serialized,
    .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct PositionLeakTrainingTests {
    @Test(
        "with request-time features, DIN and SIM scores with the position nulled correlate with position like the truth"
    )
    func nulledScoresMatchTruth() throws {
        let r = try MPIRun.mosaic(
            ranks: 1,
            [
                "ranker", "world", "--users", "200", "--days", "8", "--pins", "2000", "--fresh-pins", "100",
                "--epochs", "2", "--variants", "dcn+din,dcn+din+sim-hard",
            ])
        #expect(r.status == 0, "\(r.output)")
        func value(_ row: String) throws -> Double {
            let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("| \(row) |") }, "\(r.output)")
            return try #require(Double(line.split(separator: "|")[1].trimmingCharacters(in: .whitespaces)))
        }
        let truth = try value("oracle relevance P(closeup)/exam(position) (the truth)")
        let biased = try value("oracle P(closeup) (with position effect)")
        #expect(biased < -0.3, "the world has a position effect: \(biased)")
        for v in ["dcn+din", "dcn+din+sim-hard"] {
            let nulled = try value("\(v): closeup logit, position nulled")
            #expect(abs(nulled - truth) < 0.03, "\(v): nulled \(nulled), truth \(truth)\n\(r.stdout)")
        }
    }
}

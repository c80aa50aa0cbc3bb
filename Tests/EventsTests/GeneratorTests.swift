import Collective
import EventData
import Events
import Foundation
import Testing
import _TestSupport

/// A small world for unit tests.
func smallWorld(users: Int = 120, powerEvery: Int = 60) -> WorldParameters {
    var p = WorldParameters()
    p.users = users
    p.initialPins = 2_000
    p.freshPinsPerDay = 100
    p.days = 5
    p.dimension = 8
    p.powerUserEvery = powerEvery
    return p
}

@Suite("Synthetic world generator")
struct GeneratorTests {
    @Test("the same users give the same rows whatever block they are generated in")
    func blockIndependence() {
        let g = WorldGenerator(smallWorld())
        let all = g.users(Array(0..<40))
        let a = g.users(Array(0..<17)), b = g.users(Array(17..<40))
        var joined = a.events
        joined.append(b.events)
        #expect(all.events.count == joined.count)
        #expect(all.events.digest() == joined.digest())
        #expect(
            g.pins([5, 9, 1999]).digest() == g.pins([5]).digest() &+ g.pins([9]).digest() &+ g.pins([1999]).digest())
    }

    @Test("events are time-ordered per user, ids unique, power users pass 5,000 events")
    func structure() {
        let p = smallWorld()
        let g = WorldGenerator(p)
        let b = g.users(Array(0..<p.users))
        let e = b.events
        let user = e.i64("user_id"), ts = e.i64("timestamp_ms"), ids = e.i64("event_id")
        #expect(Set(ids).count == e.count)
        var perUser: [Int64: Int] = [:]
        for i in 0..<e.count {
            perUser[user[i], default: 0] += 1
            if i > 0, user[i] == user[i - 1] { #expect(ts[i] >= ts[i - 1]) }
        }
        #expect(perUser[0]! >= 5_000 && perUser[60]! >= 5_000, "power users: \(perUser[0]!), \(perUser[60]!)")
        let ordinary = perUser.filter { $0.key % 60 != 0 }.values.sorted()
        #expect(ordinary[ordinary.count / 2] < 1_000, "median ordinary user is far below the power users")
        #expect(ordinary.last! > 3 * ordinary[ordinary.count / 2], "activity is heavy-tailed")
        #expect(b.users.count == p.users && b.boards.count >= p.users)
    }

    @Test("impressions carry true probabilities; engagement follows impressions at the observed rates")
    func oracleProbabilities() {
        let g = WorldGenerator(smallWorld(users: 200, powerEvery: 0))
        let e = g.users(Array(0..<200)).events
        let type = e.uint8["event_type"]!, pc = e.float32["p_closeup"]!, ps = e.float32["p_save"]!
        let pos = e.int32["position"]!
        var impressions = 0, closeups = 0, saves = 0
        var expectedCloseups = 0.0, expectedSaves = 0.0
        var firstSlot = (n: 0, p: 0.0), laterSlot = (n: 0, p: 0.0)
        for i in 0..<e.count {
            switch EventType(rawValue: type[i])! {
            case .impression:
                impressions += 1
                #expect(pc[i] > 0 && pc[i] < 1 && ps[i] >= 0 && ps[i] <= pc[i])
                expectedCloseups += Double(pc[i]); expectedSaves += Double(ps[i])
                if pos[i] == 0 { firstSlot.n += 1; firstSlot.p += Double(pc[i]) }
                if pos[i] >= 10 { laterSlot.n += 1; laterSlot.p += Double(pc[i]) }
            case .closeup: closeups += 1; #expect(pc[i].isNaN)
            case .save: saves += 1
            default: break
            }
        }
        // Realised counts match the stored probabilities (within 5 standard deviations).
        #expect(
            abs(Double(closeups) - expectedCloseups) < 5 * expectedCloseups.squareRoot(),
            "\(closeups) vs \(expectedCloseups)")
        #expect(abs(Double(saves) - expectedSaves) < 5 * expectedSaves.squareRoot() + 1, "\(saves) vs \(expectedSaves)")
        #expect(saves < closeups && closeups < impressions)
        // Position bias: the first slot is examined more than slots 10+.
        #expect(firstSlot.p / Double(firstSlot.n) > 1.5 * laterSlot.p / Double(laterSlot.n))
    }

    @Test("popularity is Zipf-like and fresh pins appear in the feed every day")
    func popularityAndFreshness() {
        let p = smallWorld(users: 200, powerEvery: 0)
        let g = WorldGenerator(p)
        let e = g.users(Array(0..<200)).events
        let type = e.uint8["event_type"]!, pin = e.i64("pin_id")
        var counts: [Int64: Int] = [:]
        var fresh = 0, total = 0
        for i in 0..<e.count where type[i] == EventType.impression.rawValue {
            counts[pin[i], default: 0] += 1
            total += 1
            if pin[i] >= Int64(p.initialPins) { fresh += 1 }
        }
        let sorted = counts.values.sorted(by: >)
        let top1 = sorted.prefix(max(1, p.totalPins / 100)).reduce(0, +)
        #expect(Double(top1) > 0.1 * Double(total), "top 1% of pins get >10% of impressions: \(top1)/\(total)")
        #expect(fresh > total / 50, "fresh pins are shown: \(fresh)/\(total)")
        // Pins are never shown before they exist.
        let pins = g.pins(Array(0..<p.totalPins)).i64("created_at_ms")
        let ts = e.i64("timestamp_ms")
        for i in 0..<e.count { #expect(pins[Int(pin[i])] < ts[i]) }
    }

    @Test("pin embeddings cluster by topic (the planted structure is recoverable)")
    func embeddingsByTopic() {
        let p = smallWorld()
        let g = WorldGenerator(p)
        let t = g.pins(Array(0..<400))
        let emb = t.float32["embedding"]!, d = p.dimension
        func cos(_ a: Int, _ b: Int) -> Float {
            var dot: Float = 0, na: Float = 0, nb: Float = 0
            for j in 0..<d {
                dot += emb[a * d + j] * emb[b * d + j]; na += emb[a * d + j] * emb[a * d + j];
                nb += emb[b * d + j] * emb[b * d + j]
            }
            return dot / (na * nb).squareRoot()
        }
        var same: Float = 0, other: Float = 0, ns = 0, no = 0
        for a in 0..<100 {
            for b in (a + 1)..<100 {
                if g.topic(ofPin: a) == g.topic(ofPin: b) {
                    same += cos(a, b); ns += 1
                } else {
                    other += cos(a, b); no += 1
                }
            }
        }
        #expect(same / Float(ns) > other / Float(no) + 0.3)
    }
}

/// Runs `mosaic` on `ranks` and returns stdout, expecting success.
func runMosaic(_ ranks: Int, _ args: [String]) throws -> String {
    let r = try MPIRun.mosaic(ranks: ranks, args)
    #expect(r.status == 0, "mosaic \(args.joined(separator: " ")) on \(ranks) ranks: \(r.output)")
    return r.stdout
}

/// The DIGEST lines of a run.
func digestLines(_ dir: URL) throws -> [String] {
    try runMosaic(1, ["digest", "--data", dir.path]).split(separator: "\n").filter { $0.hasPrefix("DIGEST") }.map(
        String.init)
}

let smallGenerateArgs = [
    "--users", "150", "--pins", "1500", "--fresh-pins-per-day", "50", "--days", "4", "--dimension", "8",
    "--power-user-every", "75",
]

@Suite("Generate and ingest under mpirun", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct MultiRankDataTests {
    @Test("generate writes the same dataset with 1, 2 and 4 ranks")
    func generateIsRankIndependent() throws {
        let dir = try MPIRun.temporaryDirectory("generate")
        var reference: [String]? = nil
        for ranks in [1, 2, 4] {
            let out = dir.appendingPathComponent("r\(ranks)")
            let stdout = try runMosaic(ranks, ["generate", "--out", out.path] + smallGenerateArgs)
            #expect(stdout.contains("GENERATE ranks=\(ranks)"))
            // One shard file per rank and entity.
            let shards = try FileManager.default.contentsOfDirectory(
                atPath: out.appendingPathComponent("current/events").path)
            #expect(shards.filter { $0.hasSuffix(".h5") }.count == ranks)
            let digest = try digestLines(out)
            #expect(digest.count == 5)
            if let reference { #expect(digest == reference, "\(ranks) ranks") } else { reference = digest }
        }
    }

    @Test("export → ingest with 1, 2 and 4 ranks reproduces the generated dataset exactly")
    func ingestRoundTrip() throws {
        let dir = try MPIRun.temporaryDirectory("ingest-rt")
        let world = dir.appendingPathComponent("world")
        _ = try runMosaic(2, ["generate", "--out", world.path] + smallGenerateArgs)
        let original = try digestLines(world)
        let csv = dir.appendingPathComponent("csv")
        _ = try runMosaic(2, ["export", "--data", world.path, "--out", csv.path])
        for ranks in [1, 2, 4] {
            let out = dir.appendingPathComponent("in\(ranks)")
            var args = ["ingest", "--out", out.path, "--run-id", "rt"]
            for e in ["events", "pins", "boards", "saves", "users"] {
                args += ["--\(e)", csv.appendingPathComponent("\(e).csv").path]
            }
            let stdout = try runMosaic(ranks, args)
            #expect(stdout.contains("rejected=0 duplicates=0"), "\(stdout)")
            #expect(try digestLines(out) == original, "\(ranks) ranks")
        }
    }
}

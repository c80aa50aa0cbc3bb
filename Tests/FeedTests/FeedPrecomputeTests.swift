import Artifacts
import Foundation
import Testing
import _TestSupport

@Suite("Feed precompute under mpirun", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct FeedPrecomputeTests {
    /// Every (user, feed) of a published feeds run, from all its shards.
    func published(_ root: URL, run: String) throws -> [Int64: [Int64]] {
        let dir = root.appendingPathComponent("runs").appendingPathComponent(run).appendingPathComponent("feeds")
        var out: [Int64: [Int64]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() where name.hasSuffix(".h5") {
            let file = try H5File(path: dir.appendingPathComponent(name).path, mode: .read)
            let users = try file.root.read("user_id", as: Int64.self)
            let pins = try file.root.read("pin_id", as: Int64.self)
            let k = pins.count / max(users.count, 1)
            for (i, u) in users.enumerated() {
                #expect(out[u] == nil, "user \(u) appears in two shards")
                out[u] = Array(pins[i * k..<(i + 1) * k])
            }
        }
        return out
    }

    @Test(
        "every user's feed is the same on 1, 2 and 4 ranks, has no duplicate, and is published atomically; hold-out evaluation beside popularity"
    )
    func sameFeedsAnyRankCount() throws {
        let world = try MPIRun.temporaryDirectory("precompute-world")
        let gen = try MPIRun.mosaic(
            ranks: 2,
            [
                "generate", "--users", "200", "--pins", "2000", "--fresh-pins-per-day", "80",
                "--days", "6", "--out", world.path,
            ])
        #expect(gen.status == 0, "\(gen.output)")
        let out = try MPIRun.temporaryDirectory("precompute-feeds")
        var feeds: [[Int64: [Int64]]] = []
        var tables: [String] = []
        for ranks in [1, 2, 4] {
            let r = try MPIRun.mosaic(
                ranks: ranks,
                [
                    "feed", "precompute", "--world", world.path, "--out", out.path, "--run-id", "r\(ranks)", "--k",
                    "10",
                    "--holdout-days", "1", "--batch-users", "16",
                ])
            #expect(r.status == 0, "\(r.output)")
            #expect(r.stdout.contains("FEED PRECOMPUTE ranks=\(ranks) users=200 k=10"), "\(r.output)")
            #expect(r.stdout.contains("| most saved pins (popularity) |"), "\(r.output)")
            tables.append(r.stdout.split(separator: "\n").filter { $0.hasPrefix("|") }.joined(separator: "\n"))
            // The manifest is written last and `current` points at the newest run.
            let current = try FileManager.default.destinationOfSymbolicLink(
                atPath: out.appendingPathComponent("current").path)
            #expect(current.hasSuffix("r\(ranks)"), "\(current)")
            feeds.append(try published(out, run: "r\(ranks)"))
        }
        #expect(feeds[0].count == 200)
        #expect(feeds[0] == feeds[1] && feeds[1] == feeds[2], "feeds differ by rank count")
        // The evaluation is the same table on every rank count, and the world's truth orders
        // the policies: the oracle feed earns the most expected saves and holds its own set.
        // Same cells up to floating-point reduction order (sums over users combine per rank).
        func cells(_ table: String) -> [String] {
            table.split(separator: "\n").flatMap {
                $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            }
        }
        for other in tables.dropFirst() {
            let (a, b) = (cells(tables[0]), cells(other))
            #expect(a.count == b.count, "\(tables)")
            for (x, y) in zip(a, b) where x != y {
                let (u, v) = (Double(x) ?? .nan, Double(y) ?? .nan)
                #expect(abs(u - v) <= 2e-4, "\(x) vs \(y)")
            }
        }
        func figures(_ policy: String) throws -> [Double] {
            let row = try #require(tables[0].split(separator: "\n").first { $0.hasPrefix("| \(policy)") })
            return row.split(separator: "|").dropFirst().compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        }
        let (oracle, content, popular) = (
            try figures("oracle"), try figures("content channel + diversity"), try figures("most saved")
        )
        #expect(oracle[3] > content[3] && oracle[3] > popular[3] && oracle[4] == 1, "\(tables[0])")
        #expect(content[4] < 1 && popular[4] < 1, "\(tables[0])")
        // Trending by category (smoothed save rate) beats popularity under the truth, and the
        // merged candidates recall at least as much of the oracle set as either channel alone.
        let trending = try figures("trending by category (save rate")
        #expect(trending[3] > popular[3], "\(tables[0])")
        let recall = try ["content (multi-interest IVF)", "trending by category |", "merged"].map { name in
            let row = try #require(tables[0].split(separator: "\n").first { $0.hasPrefix("| \(name)") })
            return row.split(separator: "|").dropFirst().compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        }
        // Columns: oracle-set recall at the pool (40) and at twice it, then the held-out saves' recall.
        #expect(recall[2][1] >= max(recall[0][0], recall[1][0]) && recall[2][1] > 0, "\(tables[0])")
        #expect(recall[2][3] >= max(recall[0][2], recall[1][2]), "\(tables[0])")
        let filled = feeds[0].values.flatMap { $0 }.filter { $0 >= 0 }
        #expect(filled.count > 200 * 10 / 2, "most feeds are full: \(filled.count) slots")
        for (u, feed) in feeds[0] {
            let real = feed.filter { $0 >= 0 }
            #expect(Set(real).count == real.count, "user \(u): a pin twice")
            #expect(
                feed.firstIndex(of: -1).map { feed[$0...].allSatisfy { $0 == -1 } } ?? true,
                "user \(u): padding before pins")
        }
        // A published run is never overwritten.
        let again = try MPIRun.mosaic(
            ranks: 1, ["feed", "precompute", "--world", world.path, "--out", out.path, "--run-id", "r1", "--k", "10"])
        #expect(again.status != 0 && again.output.contains("already published"), "\(again.output)")
    }

    @Test("bad options and a missing world give clear errors")
    func badInput() throws {
        let r = try MPIRun.mosaicSingleton(["feed", "precompute", "--world", "/nonexistent/world"])
        #expect(r.status != 0 && r.stderr.contains("no published run"), "\(r.output)")
        let d = try MPIRun.mosaicSingleton(["feed", "precompute", "--diversity", "2"])
        #expect(d.status != 0 && d.stderr.contains("--diversity"), "\(d.output)")
    }
}

import Foundation
import Testing
import _TestSupport

@Suite("Feed preview under mpirun", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct FeedPreviewTests {
    /// Generates a small world once and previews the same user's feed on 1, 2 and 4 ranks.
    @Test(
        "the content-channel feed is the same on 1, 2 and 4 ranks, excludes seen pins, and follows the user's interests"
    )
    func sameFeedAnyRankCount() throws {
        let root = try MPIRun.temporaryDirectory("feed")
        let gen = try MPIRun.mosaic(
            ranks: 2,
            [
                "generate", "--users", "300", "--pins", "3000", "--fresh-pins-per-day", "100",
                "--days", "7", "--out", root.path,
            ])
        #expect(gen.status == 0, "\(gen.output)")
        var outputs: [String] = []
        for ranks in [1, 2, 4] {
            let r = try MPIRun.mosaic(ranks: ranks, ["feed", "preview", "--world", root.path, "--k", "12"])
            #expect(r.status == 0, "\(r.output)")
            outputs.append(r.stdout)
        }
        #expect(
            outputs[0] == outputs[1] && outputs[1] == outputs[2],
            "feeds differ by rank count:\n\(outputs.joined(separator: "\n---\n"))")
        let rows = outputs[0].split(separator: "\n").filter { $0.hasPrefix("| ") && !$0.hasPrefix("| #") }
        #expect(rows.count == 12, "\(outputs[0])")
        let pins = rows.map { $0.split(separator: "|")[1].trimmingCharacters(in: .whitespaces) }
        #expect(Set(pins).count == pins.count, "a pin appears twice in the feed")
        // Every feed pin was retrieved for one of the user's engaged categories.
        #expect(outputs[0].contains("feed: 12 pins, 12 in a category the user engaged with"), "\(outputs[0])")
        // The diversity re-rank: a strict cap and a strong novelty weight spread the feed.
        let d = try MPIRun.mosaic(
            ranks: 2,
            [
                "feed", "preview", "--world", root.path, "--k", "12", "--diversity", "0.3", "--window", "4",
                "--max-per-category", "1",
            ])
        #expect(d.status == 0, "\(d.output)")
        let line = try #require(
            d.stdout.split(separator: "\n").first { $0.hasPrefix("diversity re-rank") }, "\(d.output)")
        #expect(line.contains("at most 1 of one in 4 slots"), "\(line)")
        let cosines = line.components(separatedBy: "cosine ").dropFirst().compactMap { Double($0.prefix(5)) }
        #expect(cosines.count == 2 && cosines[0] < cosines[1], "\(line)")
    }

    @Test("a bad --world or --user gives a clear error, not a crash")
    func badInput() throws {
        let r = try MPIRun.mosaicSingleton(["feed", "preview", "--world", "/nonexistent/world"])
        #expect(r.status != 0 && r.stderr.contains("no published run"), "\(r.output)")
        let h = try MPIRun.mosaicSingleton(["feed", "preview", "--history", "1.5"])
        #expect(h.status != 0 && h.stderr.contains("--history"), "\(h.output)")
    }
}

import Artifacts
import Feed
import Foundation
import Testing
import _TestSupport

@Suite("Merged candidates")
struct CandidatesTests {
    @Test("append keeps every channel that proposed a pin, with its rank there")
    func channelsAndRanks() {
        var c = Candidates(channelNames: ["content", "trending"])
        c.append(user: 7, lists: [[1, 2, 3], [2, 9]], count: 10)
        c.append(user: 8, lists: [[], [5]], count: 10)
        #expect(Array(c.pins(ofUser: 0)) == [1, 2, 3, 9] && Array(c.pins(ofUser: 1)) == [5])
        #expect(c.channels == [1, 3, 1, 2, 2])
        #expect(c.channelRanks == [0, -1, 1, 0, 2, -1, -1, 1, -1, 0])
        #expect(c.offsets == [0, 4, 5])
    }
}

@Suite("Feed candidates under mpirun", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct CandidatesJobTests {
    /// user → (pins, channel masks, ranks) of a published candidates run.
    func read(_ root: URL) throws -> [Int64: ([Int64], [UInt8], [Int32])] {
        var out: [Int64: ([Int64], [UInt8], [Int32])] = [:]
        for path in try PublishedRun.open(root: root).paths(of: "candidates") {
            let c = try Candidates.read(path: path)
            for (i, u) in c.users.enumerated() {
                let rows = Int(c.offsets[i])..<Int(c.offsets[i + 1])
                let w = c.channelNames.count
                #expect(out[u] == nil, "user \(u) in two shards")
                out[u] = (
                    Array(c.pins[rows]), Array(c.channels[rows]),
                    Array(c.channelRanks[(rows.lowerBound * w)..<(rows.upperBound * w)])
                )
            }
        }
        return out
    }

    @Test(
        "`mosaic feed candidates`: the same merged candidates on 1, 2 and 4 ranks; every candidate names its channels")
    func sameCandidatesAnyRankCount() throws {
        let world = try MPIRun.temporaryDirectory("candidates-world")
        let gen = try MPIRun.mosaic(
            ranks: 2,
            [
                "generate", "--users", "150", "--pins", "2000", "--fresh-pins-per-day", "60", "--days", "5", "--out",
                world.path,
            ])
        #expect(gen.status == 0, "\(gen.output)")
        let graph = try MPIRun.temporaryDirectory("candidates-graph"),
            walks = try MPIRun.temporaryDirectory("candidates-walks")
        #expect(try MPIRun.mosaic(ranks: 2, ["graph", "build", "--data", world.path, "--out", graph.path]).status == 0)
        #expect(
            try MPIRun.mosaic(ranks: 2, ["graph", "walks", "--graph", graph.path, "--out", walks.path]).status == 0)
        // The night's PinSage vectors and their index (a few steps: the channel's plumbing is tested here).
        let dir = try MPIRun.temporaryDirectory("candidates-pinsage")
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        for (model, embeddings) in [("pinsage", "emb"), ("other", "emb-other")] {
            let train = try MPIRun.mosaic(
                ranks: 2,
                [
                    "pinsage", "train", "--data", world.path, "--walks", walks.path, "--out", path(model), "--run-id",
                    model,
                    "--steps", "4", "--dim", "16", "--hidden", "16",
                ])
            #expect(train.status == 0, "\(train.output)")
            let embed = try MPIRun.mosaic(
                ranks: 2,
                [
                    "pinsage", "embed", "--data", world.path, "--walks", walks.path, "--model", path(model), "--out",
                    path(embeddings),
                ])
            #expect(embed.status == 0, "\(embed.output)")
        }
        let index = try MPIRun.mosaic(
            ranks: 2, ["index", "build", "--embeddings", path("emb"), "--out", path("ivf"), "--nlist", "8", "--quiet"])
        #expect(index.status == 0, "\(index.output)")
        // An index built over another model's vectors is refused, naming the index file.
        let mismatch = try MPIRun.mosaic(
            ranks: 1,
            [
                "feed", "candidates", "--world", world.path, "--out", path("bad"), "--pinsage-embeddings",
                path("emb-other"),
                "--pinsage-index", path("ivf"),
            ])
        #expect(
            mismatch.status != 0 && mismatch.stderr.contains("ivf.h5") && mismatch.stderr.contains("'other'"),
            "\(mismatch.output)")
        // The two-tower model: the same parameters on 1, 2 and 4 ranks; a resumed run ends
        // where an uninterrupted one does.
        func train(_ ranks: Int, _ out: String, _ extra: [String] = []) throws -> Double {
            let r = try MPIRun.mosaic(
                ranks: ranks,
                [
                    "retrieval", "train", "--data", world.path, "--embeddings", path("emb"), "--out", path(out),
                    "--epochs", "3", "--group-size", "16", "--groups-per-step", "4", "--hidden", "8",
                ] + extra)
            #expect(r.status == 0 && r.stdout.contains("TWO-TOWER-TRAIN"), "\(r.output)")
            let sum = r.stdout.components(separatedBy: "param_sum=").last?.prefix { !$0.isWhitespace } ?? ""
            return Double(sum) ?? .nan
        }
        let sums = try [1, 2, 4].map { try train($0, "tt-\($0)", ["--checkpoint-every", "2"]) }
        #expect(abs(sums[1] - sums[0]) < 1e-3 && abs(sums[2] - sums[0]) < 1e-3, "parameter sums \(sums)")
        let interrupted = try train(2, "tt-resume", ["--epochs", "1", "--checkpoint-every", "1"])
        #expect(interrupted != sums[1])
        // As if it had crashed before publishing: only the checkpoint is left.
        for name in ["runs", "current"] { try? FileManager.default.removeItem(atPath: path("tt-resume/\(name)")) }
        #expect(abs(try train(2, "tt-resume", ["--resume"]) - sums[1]) < 1e-5, "the resumed run ends elsewhere")
        let embed = try MPIRun.mosaic(
            ranks: 2,
            [
                "retrieval", "embed-users", "--data", world.path, "--embeddings", path("emb"), "--model", path("tt-2"),
                "--out", path("uv"),
            ])
        #expect(embed.status == 0 && embed.stdout.contains("USER-VECTORS users=150"), "\(embed.output)")
        // A model trained on other embeddings is refused, naming the model file.
        let wrong = try MPIRun.mosaic(
            ranks: 1,
            [
                "retrieval", "embed-users", "--data", world.path, "--embeddings", path("emb-other"), "--model",
                path("tt-2"), "--out", path("uv-bad"),
            ])
        #expect(wrong.status != 0 && wrong.stderr.contains("two_tower.h5"), "\(wrong.output)")
        var runs: [[Int64: ([Int64], [UInt8], [Int32])]] = []
        for ranks in [1, 2, 4] {
            let out = try MPIRun.temporaryDirectory("candidates-\(ranks)")
            let r = try MPIRun.mosaic(
                ranks: ranks,
                [
                    "feed", "candidates", "--world", world.path, "--out", out.path, "--count", "80", "--pool", "50",
                    "--batch-users", "16", "--walks", walks.path, "--pinsage-embeddings", path("emb"),
                    "--pinsage-index", path("ivf"), "--user-vectors", path("uv"),
                ])
            #expect(r.status == 0 && r.stdout.contains("FEED CANDIDATES ranks=\(ranks) users=150"), "\(r.output)")
            runs.append(try read(out))
        }
        #expect(runs[0].count == 150)
        // Every user gets candidates, also one who engaged with nothing (trending's cold start).
        #expect(runs[0].values.allSatisfy { !$0.0.isEmpty }, "a user without candidates")
        for other in runs.dropFirst() {
            #expect(Set(other.keys) == Set(runs[0].keys))
            for (u, a) in runs[0] {
                let b = other[u]!
                #expect(a.0 == b.0 && a.1 == b.1 && a.2 == b.2, "user \(u)")
            }
        }
        var shared = 0, pixie = 0, pinsage = 0, twoTower = 0
        for (u, c) in runs[0] {
            #expect(c.0.count <= 80 && Set(c.0).count == c.0.count, "user \(u)")
            for (j, mask) in c.1.enumerated() {
                #expect(mask != 0)
                for ch in 0..<5 { #expect((mask & (1 << ch) != 0) == (c.2[j * 5 + ch] >= 0), "user \(u) row \(j)") }
                if mask.nonzeroBitCount > 1 { shared += 1 }
                if mask & 4 != 0 { pixie += 1 }
                if mask & 8 != 0 { pinsage += 1 }
                if mask & 16 != 0 { twoTower += 1 }
            }
        }
        #expect(
            shared > 0 && pixie > 0 && pinsage > 0 && twoTower > 0,
            "pins proposed by several channels: \(shared); by Pixie: \(pixie); by PinSage: \(pinsage); by the two-tower: \(twoTower)"
        )
    }
}

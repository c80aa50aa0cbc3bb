import Artifacts
import Collective
import EventData
import Events
import Feed
import Models
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

    @Test("weighted merge: shares follow the weights, an exhausted channel gives its slots away, weight 0 drops")
    func weightedMerge() {
        let a = Array(Int64(0)..<100), b = Array(Int64(100)..<200), c: [Int64] = [200, 201]
        let merged = Candidates.merge([a, b, c], count: 40, weights: [3, 1, 1])
        #expect(merged.count == 40 && Set(merged).count == 40)
        #expect(merged.filter { $0 < 100 }.count == 29, "a takes 3/5 while c lasts, then 3/4")
        #expect(merged.filter { $0 >= 200 }.count == 2)
        #expect(Candidates.merge([a, b], count: 4, weights: [1, 0]) == [0, 1, 2, 3])
        #expect(Candidates.merge([a, b], count: 4) == [0, 100, 1, 101], "equal weights are round-robin")
    }

    @Test("a feed leaves out saved and hidden pins always, other seen pins only within --seen-days")
    func seenDays() {
        var u = UserEvents(user: 1)
        let day: Int64 = 86_400_000
        u.pins = [1, 2, 3, 4, 5]
        u.types = [0, 3, 4, 1, 0].map { UInt8($0) }  // impression, save, hide, closeup (all day 0), impression (day 9)
        u.times = [0, 0, 0, 0, 9 * day]
        #expect(u.excluded(before: 10 * day, seenDays: nil) == [1, 2, 3, 4, 5])
        #expect(u.excluded(before: 10 * day, seenDays: 2) == [2, 3, 5])
    }

    @Test("user–user CF: the nearest users' recent saves, weighted by similarity and recency; own seen pins left out")
    func userCF() throws {
        let comm = try Communicator.world()
        // Users 0 and 1 point the same way, user 2 the other way.
        let vectors = UserVectors(
            users: [0, 1, 2], vectors: [1, 0, 0.96, 0.28, -1, 0], d: 2, modelVersion: "m", embeddingVersion: "e",
            atMs: 100)
        var users = (0..<3).map { UserEvents(user: Int64($0)) }
        users[0].pins = [7]
        users[0].types = [EventType.save.rawValue]
        users[0].times = [1]
        users[1].pins = [10, 11, 12]
        users[1].types = [EventType.save.rawValue, EventType.save.rawValue, EventType.save.rawValue]
        users[1].times = [1, 2, 200]  // 12 is after the cut
        users[2].pins = [20]
        users[2].types = [EventType.save.rawValue]
        users[2].times = [1]
        var cf = UserCFChannel()
        cf.neighbours = 1
        let out = try cf.candidates(
            users: users, vectors: UserVectorChannel(vectors: vectors), cut: 100, k: 5, batchUsers: 2,
            exclude: { users[$0].seen(before: 100) }, comm: comm)
        #expect(out[0] == [11, 10], "user 0 gets user 1's saves, most recent first: \(out[0])")
        #expect(out[1] == [7], "\(out[1])")
        #expect(!out[2].contains(20))
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
        "the funnel under mpirun: two-tower, candidates, ranker and ranked feeds give the same results on 1, 2 and 4 ranks; every candidate names its channels"
    )
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
        var outs: [URL] = []
        for ranks in [1, 2, 4] {
            let out = try MPIRun.temporaryDirectory("candidates-\(ranks)")
            outs.append(out)
            let r = try MPIRun.mosaic(
                ranks: ranks,
                [
                    "feed", "candidates", "--world", world.path, "--out", out.path, "--count", "80", "--pool", "50",
                    "--batch-users", "16", "--walks", walks.path, "--pinsage-embeddings", path("emb"),
                    "--pinsage-index", path("ivf"), "--user-vectors", path("uv"), "--holdout-days", "1",
                ])
            #expect(r.status == 0 && r.stdout.contains("FEED CANDIDATES ranks=\(ranks) users=150"), "\(r.output)")
            runs.append(try read(out))
            // `mosaic cut` reads only the events' timestamps: the same cut as the job's, on any rank count.
            let cut = r.stdout.components(separatedBy: "cut_ms=").dropFirst().first?.prefix { $0.isNumber } ?? ""
            let printed = try MPIRun.mosaic(ranks: ranks, ["cut", "--data", world.path, "--holdout-days", "1"])
            #expect(
                !cut.isEmpty && printed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == String(cut),
                "cut \(cut) vs \(printed.output)")
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
        let names = try PublishedRun.open(root: outs[0]).paths(of: "candidates").first.map {
            try Candidates.read(path: $0).channelNames
        }
        let expected = ["content", "trending", "pixie", "fresh", "pinsage", "two-tower", "user-cf"]
        #expect(names == expected, "channels \(names ?? [])")
        let w = expected.count
        var shared = 0
        var proposed = [Int](repeating: 0, count: w)
        for (u, c) in runs[0] {
            #expect(c.0.count <= 80 && Set(c.0).count == c.0.count, "user \(u)")
            for (j, mask) in c.1.enumerated() {
                #expect(mask != 0)
                for ch in 0..<w {
                    #expect((mask & (1 << ch) != 0) == (c.2[j * w + ch] >= 0), "user \(u) row \(j)")
                    if mask & (1 << ch) != 0 { proposed[ch] += 1 }
                }
                if mask.nonzeroBitCount > 1 { shared += 1 }
            }
        }
        #expect(shared > 0, "no pin proposed by several channels")
        #expect(
            proposed.allSatisfy { $0 > 0 }, "candidates per channel \(zip(expected, proposed).map { "\($0)=\($1)" })")

        // The ranking stage: the ranker trained on the run's impressions (the same model on 1, 2
        // and 4 ranks), then every user's candidates ranked and re-ranked into the feed (the same
        // feeds on 1 and 2 ranks), judged beside the other policies.
        var lastTrainOutput = ""
        func trainRanker(_ ranks: Int, name: String? = nil, _ extra: [String] = ["--epochs", "2"]) throws -> Double {
            let r = try MPIRun.mosaic(
                ranks: ranks,
                [
                    "ranker", "train", "--data", world.path, "--embeddings", path("emb"), "--user-model",
                    path("tt-2"), "--holdout-days", "1", "--batch-size", "512", "--out",
                    path(name ?? "ranker-\(ranks).h5"),
                ] + extra)
            #expect(r.status == 0 && r.stdout.contains("RANKER TRAIN ranks=\(ranks)"), "\(r.output)")
            let sum = r.stdout.components(separatedBy: "param_sum=").last?.prefix { !$0.isWhitespace } ?? ""
            lastTrainOutput = r.output
            return Double(sum) ?? .nan
        }
        let rankerSums = try [1, 2, 4].map { try trainRanker($0) }
        for s in rankerSums.dropFirst() {
            #expect(abs(s - rankerSums[0]) <= 1e-4 * max(1, abs(rankerSums[0])), "ranker parameter sums \(rankerSums)")
        }
        // Checkpoints and --resume: a run stopped after its first epoch (checkpoints every 3
        // steps and after the epoch), resumed for the second, ends with the uninterrupted model.
        _ = try trainRanker(2, name: "ranker-resume.h5", ["--epochs", "1", "--checkpoint-every", "3"])
        #expect(FileManager.default.fileExists(atPath: path("ranker-resume.checkpoint.h5")))
        let resumed = try trainRanker(2, name: "ranker-resume.h5", ["--epochs", "2", "--resume"])
        #expect(
            lastTrainOutput.contains("resumed from") && lastTrainOutput.contains("at epoch 2, step 0"),
            "\(lastTrainOutput)")
        #expect(
            abs(resumed - rankerSums[1]) <= 1e-5 * max(1, abs(rankerSums[1])), "resumed \(resumed) vs \(rankerSums)")
        var feeds: [[Int64: [Int64]]] = []
        for ranks in [1, 2] {
            let r = try MPIRun.mosaic(
                ranks: ranks,
                [
                    "feed", "rank", "--world", world.path, "--candidates", outs[0].path, "--embeddings", path("emb"),
                    "--ranker", path("ranker-1.h5"), "--user-model", path("tt-2"), "--out", path("ranked-\(ranks)"),
                    "--k", "10", "--keep", "40", "--batch-users", "16",
                ])
            #expect(r.status == 0 && r.stdout.contains("FEED RANK ranks=\(ranks) users="), "\(r.output)")
            #expect(
                r.stdout.contains("| ranked + diversity re-rank (published)") && r.stdout.contains("| oracle"),
                "\(r.output)")
            var byUser: [Int64: [Int64]] = [:]
            for file in try PublishedRun.open(root: URL(fileURLWithPath: path("ranked-\(ranks)"))).paths(of: "feeds") {
                let f = try H5File(path: file, mode: .read)
                let users = try f.root.read("user_id", as: Int64.self), pins = try f.root.read("pin_id", as: Int64.self)
                for (i, u) in users.enumerated() { byUser[u] = Array(pins[i * 10..<(i + 1) * 10]) }
            }
            feeds.append(byUser)
        }
        // Every user with an event before the cut gets a feed (the others are cold start).
        #expect(
            feeds[0].count > 130 && feeds[0] == feeds[1], "the same feeds on 1 and 2 ranks: \(feeds[0].count) users")
        #expect(feeds[0].values.filter { $0.allSatisfy { $0 >= 0 } }.count > 100, "most feeds are full")

        // Bad input stops `feed rank` with an error naming the file and what differs; nothing
        // is published.
        func rankFails(ranker: String, candidates: URL, _ needles: String...) throws {
            let out = path("ranked-bad")
            let r = try MPIRun.mosaic(
                ranks: 2,
                [
                    "feed", "rank", "--world", world.path, "--candidates", candidates.path, "--embeddings", path("emb"),
                    "--ranker", ranker, "--user-model", path("tt-2"), "--out", out, "--k", "10", "--keep", "40",
                ])
            #expect(r.status != 0 && needles.allSatisfy { r.output.contains($0) }, "\(r.output)")
            #expect((try? PublishedRun.open(root: URL(fileURLWithPath: out))) == nil, "a failed ranking published")
        }
        // A ranker trained on other features.
        let otherFeatures = path("ranker-other-features.h5")
        try FileManager.default.copyItem(atPath: path("ranker-1.h5"), toPath: otherFeatures)
        do {
            let file = try H5File(path: otherFeatures, mode: .readWrite)
            try file.root.setAttribute("feature_version", "feed-features-0")
            try file.flush()
        }
        try rankFails(
            ranker: otherFeatures, candidates: outs[0],
            "ranker-other-features.h5: trained with feature_version 'feed-features-0'")
        // A ranker whose parameters are NaN.
        let nanRanker = path("ranker-nan.h5")
        try FileManager.default.copyItem(atPath: path("ranker-1.h5"), toPath: nanRanker)
        do {
            let file = try H5File(path: nanRanker, mode: .readWrite)
            let count = try file.root.read("parameters", as: Float.self).count
            try file.root.dataset("parameters").write([Float](repeating: .nan, count: count))
            try file.flush()
        }
        try rankFails(ranker: nanRanker, candidates: outs[0], "ranker-nan.h5: ", "score nan for user")
        // Candidates of another dataset run.
        let otherCandidates = URL(fileURLWithPath: path("candidates-other"))
        try FileManager.default.copyItem(at: outs[0], to: otherCandidates)
        let run = try PublishedRun.open(root: otherCandidates)
        var manifest = run.manifest
        manifest.config["world"] = "another-world"
        try JSONEncoder().encode(manifest).write(
            to: run.directory.appendingPathComponent(PublishedRun.manifestName))
        try rankFails(
            ranker: path("ranker-1.h5"), candidates: otherCandidates, "candidates of dataset run 'another-world'")
    }
}

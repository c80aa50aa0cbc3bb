import ArgumentParser
import Artifacts
import Collective
import EventData
import Evaluation
import Events
import Feed
import Foundation
import Models
import ProcessKit
import Publishing
import Ranking

/// `mosaic feed rank`: every user's merged candidates ranked and re-ranked into the feed.
struct FeedRankCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rank",
        abstract: "Rank every user's merged candidates with the ranker, re-rank for diversity, publish the feeds.",
        discussion: """
            Reads the candidates run of `mosaic feed candidates` (each rank its users) and scores each \
            user's candidates with the ranker of `ranker train --data` through the serving fast path \
            (RequestScorer, position-free), features as of the candidates' cut (Feed.FeedFeatures, the \
            training rows' implementation); calibrated P(save) and P(closeup) combine as \
            --save-weight · P(save) + --closeup-weight · P(closeup); the top --keep stay ranked for the \
            serving shard and the diversity re-rank (MMR over the PinSage vectors, category cap) picks \
            the --k feed. Only users with an event in the last --active-days get a feed (the others \
            get the cold-start path at serving); both counts are printed. Publishes the artifact \
            `feeds` and the cold-start lists `cold_start` (trending by country and device, for users \
            without a feed; docs/artifacts.md). When the candidates hold out the last days of a generated \
            world, prints every policy beside the others under the world's truth. Writes those figures \
            to <out>/summary.json (`mosaic evaluate`).
            """)

    @Option(help: "Root folder of the dataset runs (its `current` run is read).") var world = "out/world"
    @Option(help: "Root of the candidates run (`mosaic feed candidates`).") var candidates = "out/candidates"
    @Option(help: "Root of the PinSage embeddings run the ranker was trained with.") var embeddings = "out/embeddings"
    @Option(help: "The ranker model file (`mosaic ranker train --data … --out FILE`).") var ranker = "out/ranker.h5"
    @Option(help: "Root of the two-tower run, when the ranker was trained with it (`--user-model`).") var userModel:
        String?
    @Option(help: "Root folder the feeds are published under.") var out = "out/feeds"
    @Option(help: "Run id (default: ranked-<candidates run id>).") var runID: String?
    @Option(help: "Feed length.") var k = 50
    @Option(help: "Ranked candidates kept per user for the serving shard.") var keep = 500
    @Option(help: "Weight of the calibrated P(save) in the score.") var saveWeight = 1.0
    @Option(
        help:
            "Weight of the calibrated P(closeup) in the score (1: the closeup head, trained on ten times more positives, ranks the truth better; docs/feed.md)."
    )
    var closeupWeight = 1.0
    @Option(help: "Diversity trade-off λ of the re-rank (1 = ranked order; 0.85 measured best with the cap of 4).")
    var diversity = 0.85
    @Option(help: "Re-rank window (slots).") var window = 8
    @Option(help: "At most this many pins of a category per window.") var maxPerCategory = 4
    @Option(
        help:
            "Feed slots kept for fresh pins (created in the last 2 days), evenly spaced (5: best of 0, 3, 5, 10 on the validation world, docs/feed.md); 0: none."
    )
    var freshSlots = 5
    @Option(help: "Only users with an event in the last D days before the cut get a feed (0 = every user).")
    var activeDays = 0
    @Option(help: "Users per rank per round.") var batchUsers = 256

    func validate() throws {
        guard k >= 1, keep >= k, (0...1).contains(diversity), window >= 1, maxPerCategory >= 1, activeDays >= 0,
            freshSlots >= 0, freshSlots <= k
        else {
            throw ValidationError(
                "--k ≥ 1, --keep ≥ --k, --diversity in [0, 1], --window and --max-per-category ≥ 1, --active-days ≥ 0, --fresh-slots in 0 … k"
            )
        }
        guard saveWeight >= 0, closeupWeight >= 0, saveWeight + closeupWeight > 0 else {
            throw ValidationError("--save-weight and --closeup-weight ≥ 0, not both 0")
        }
    }

    func run() throws {
        Communicator.runJob { comm in
            let t0 = now()
            let reader = try DatasetReader(root: URL(fileURLWithPath: world))
            let candidateRun = try PublishedRun.open(root: URL(fileURLWithPath: candidates))
            if let source = candidateRun.manifest.config["world"], source != reader.run.manifest.runID {
                throw ArtifactError(
                    file: candidateRun.directory.appendingPathComponent(PublishedRun.manifestName).path,
                    message:
                        "candidates of dataset run '\(source)', but --world is '\(reader.run.manifest.runID)': make the candidates from this world (`mosaic feed candidates --world \(world)`)"
                )
            }
            let cut = try H5File(path: try candidateRun.paths(of: "candidates")[0], mode: .read).root.intAttribute(
                "cut_ms")
            let loaded = try UserEvents.load(world: reader, comm: comm)
            var allUsers = loaded
            let profiles = try UserProfile.load(world: reader, comm: comm)
            let source = try CandidateSource(root: URL(fileURLWithPath: candidates), comm: comm)
            let pins = try PinFeatureTable.load(world: reader, embeddings: URL(fileURLWithPath: embeddings), comm: comm)
            let stats = try PinDailyStats.build(users: allUsers, before: cut, comm: comm)
            // Users with candidates, active in the window; aligned with their candidates.
            let since = activeDays > 0 && cut != .max ? cut - Int64(activeDays) * 86_400_000 : Int64.min
            let rowOf = Dictionary(uniqueKeysWithValues: source.users.enumerated().map { ($1, $0) })
            allUsers = allUsers.filter { rowOf[$0.user] != nil }
            let users = allUsers.filter { u in u.times.contains { $0 >= since && $0 < cut } }
            var ranking = try FeedRanking.load(
                ranker: ranker, pins: pins, userModel: userModel.map { URL(fileURLWithPath: $0) })
            ranking.saveWeight = saveWeight
            ranking.closeupWeight = closeupWeight
            ranking.k = k
            ranking.keep = keep
            ranking.batchUsers = batchUsers
            ranking.freshSlots = freshSlots
            ranking.rerank = DiversityRerank(lambda: diversity, window: window, maxPerCategory: maxPerCategory)
            let writer = try RunWriter(
                root: URL(fileURLWithPath: out), runID: runID ?? "ranked-\(candidateRun.manifest.runID)",
                producer: "mosaic feed rank",
                config: [
                    "world": reader.run.manifest.runID, "candidates": candidateRun.manifest.runID, "ranker": ranker,
                    "k": "\(k)", "save_weight": "\(saveWeight)", "closeup_weight": "\(closeupWeight)",
                    "diversity": "\(diversity)", "active_days": "\(activeDays)",
                ], comm: comm)
            // Users in rounds, each round's feeds written before the next (memory: one round).
            let shard = try RankedFeeds.ShardWriter(run: writer, k: k, contentWidth: pins.d)
            let truth = cut != .max ? FeedEvaluation.world(of: reader.run) : nil
            let rows = users.map { rowOf[$0.user]! }
            let t1 = now()
            var progress = JobProgress(comm: comm, label: "feed rank")
            let feeds = try ranking.rank(
                users: users, profiles: profiles, candidates: { try source.rows($0.map { rows[$0] }) }, pins: pins,
                stats: stats, at: cut, into: shard, keepFeeds: truth != nil, comm: comm
            ) { done, total in progress.update(done: done, total: total, items: done, unit: "users") }
            let rankSeconds = now() - t1
            try shard.finish(
                attributes: [
                    "source_run": reader.run.manifest.runID,
                    "channel_names": source.channelNames.joined(separator: ","),
                    "ranker": ranker,
                ], cutMs: cut)
            // What a user without a feed gets: trending by country and device (the serving shard).
            let trending = try TrendingChannel.build(
                users: loaded, profiles: profiles, cut: cut, days: 14, perCategory: keep,
                categoriesOf: { try pins.lookup($0, comm: comm).categories }, comm: comm)
            try ColdStartLists.write(trending, to: writer, isRoot: comm.isRoot)
            let manifest = try writer.commit()
            var table = "", summary = FeedSummary(users: 0, k: k, holdoutDays: 0, policies: [])
            if let truth {
                (table, summary) = try FeedSummary.evaluate(
                    users: users, allUsers: allUsers, candidates: try source.rows(rows), feeds: feeds, k: k, cut: cut,
                    world: truth,
                    pins: pins, comm: comm)
            }
            var counts = [Int64(users.count), Int64(allUsers.count - users.count)]
            try comm.allreduce(&counts)
            summary.users = Int(counts[0])
            if comm.isRoot { try StageSummary.write(summary, to: StageSummary.path(besideArtifact: out)) }
            let memory = try comm.peakMemoryPerRank()
            if comm.isRoot {
                print(
                    String(
                        format:
                            "FEED RANK ranks=%d users=%lld inactive=%lld k=%d seconds=%.2f rank_s=%.2f users_per_s=%.0f peak_rss_mib=%@ run=%@",
                        comm.size, counts[0], counts[1], k, now() - t0, rankSeconds,
                        Double(counts[0]) / max(rankSeconds, 1e-9), memory, manifest.runID))
                if !table.isEmpty { print("\n" + table) }
            }
        }
    }
}

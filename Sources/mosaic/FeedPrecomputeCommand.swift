import Artifacts
import ArgumentParser
import Collective
import EventData
import Events
import Feed
import Foundation
import Publishing

/// `mosaic feed precompute`: the home feed of every user, published atomically as one HDF5
/// shard per rank.
struct FeedPrecomputeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "precompute",
        abstract: "Precompute every user's home feed (content channel → diversity re-rank) and publish it.",
        discussion: """
            Reads the published dataset at --world and builds the content channel (distributed \
            IVF-Flat over every pin's content embedding). Each rank takes the users of its event \
            shards; per user: up to --interests queries (mean embedding of the engaged pins of each \
            most engaged category, from the last --recent engaged pins), a pool of --pool candidates \
            shared between the interests in proportion to engagement, every pin the user already \
            saw left out, then the diversity re-rank (--diversity, --window, --max-per-category) \
            picks --k pins. Users are processed in rounds of --batch-users per rank (progress and \
            ETA on rank 0).

            Output: <out>/runs/<run-id>/feeds/part-RRRRR-of-SSSSS.h5 with /user_id (n) and \
            /pin_id (n, k), −1 where a feed is shorter; published atomically (<out>/current).

            With --holdout-days D > 0 the feeds are built from the events before the last D days \
            and checked against the saves of those days: HR@k (users with a held-out save who get \
            at least one in their feed) and recall@k, beside the same pools without the re-rank and \
            the most-saved pins (popularity).
            """)

    @OptionGroup var feed: FeedOptions
    @Option(help: "Root folder the feeds are published under.") var out = "out/feeds"
    @Option(help: "Run id of the published feeds (default: feeds-<dataset run id>[-holdout<D>]).") var runID: String?
    @Option(help: "Feed length.") var k = 50
    @Option(help: "Candidates retrieved per user before the re-rank (0 = 4 × --k).") var pool = 0
    @Option(help: "Diversity re-rank λ: 1 = relevance order only, lower = more novelty (MMR).") var diversity = 0.7
    @Option(help: "Sliding window (slots) of the category cap and the similarity penalty.") var window = 8
    @Option(help: "Pins of one category allowed in any --window consecutive slots.") var maxPerCategory = 3

    func run() throws {
        Communicator.runJob { comm in
            guard k >= 1, pool >= 0 else { throw ValidationError("--k must be ≥ 1 and --pool ≥ 0") }
            guard (0...1).contains(diversity), window >= 1, maxPerCategory >= 1 else {
                throw ValidationError("--diversity must be in [0, 1]; --window and --max-per-category ≥ 1")
            }
            let started = Date()
            let reader = try DatasetReader(root: URL(fileURLWithPath: feed.world))
            let source = reader.run.manifest.runID
            comm.log("feed precompute: dataset \(source), \(comm.size) rank(s)")
            let channel = try ContentChannel.build(world: reader, comm: comm)
            let users = try UserEvents.load(world: reader, comm: comm)
            let profiles = try UserProfile.load(world: reader, comm: comm)
            let cut = try UserEvents.cut(holdoutDays: feed.holdoutDays, users: users, comm: comm)
            var job = FeedPrecompute()
            job.k = k
            job.pool = pool
            feed.configure(&job)
            job.keepCandidates = feed.holdoutDays > 0
            job.rerank = DiversityRerank(lambda: diversity, window: window, maxPerCategory: maxPerCategory)
            comm.log(
                String(
                    format: "  content index built (%.1f s); %d users on this rank, pool %d, k %d",
                    Date().timeIntervalSince(started), users.count, job.poolSize, k))
            let t0 = Date()
            var lastLog = Date.distantPast
            let trending =
                feed.holdoutDays > 0
                ? try TrendingChannel.build(
                    users: users, profiles: profiles, cut: cut, days: feed.trendingDays, perCategory: job.poolSize,
                    content: channel,
                    comm: comm)
                : nil
            let feeds = try job.run(
                channel: channel, trending: trending, users: users, profiles: profiles, cut: cut, comm: comm
            ) {
                done, total in
                guard Date().timeIntervalSince(lastLog) > 2 || done == total else { return }
                lastLog = Date()
                let rate = Double(done) / max(Date().timeIntervalSince(t0), 1e-9)
                comm.log(
                    String(
                        format: "  feeds: %d / %d users (%.0f users/s, ETA %.0f s)", done, total, rate,
                        Double(total - done) / max(rate, 1e-9)))
            }
            let seconds = Date().timeIntervalSince(t0)

            // Publish: one shard per rank.
            let id = runID ?? "feeds-\(source)" + (feed.holdoutDays > 0 ? "-holdout\(feed.holdoutDays)" : "")
            let writer = try RunWriter(
                root: URL(fileURLWithPath: out), runID: id, producer: "mosaic feed precompute",
                config: [
                    "world": source, "k": "\(k)", "pool": "\(job.poolSize)", "diversity": "\(diversity)",
                    "window": "\(window)", "max_per_category": "\(maxPerCategory)",
                    "holdout_days": "\(feed.holdoutDays)",
                ],
                comm: comm)
            let path = try writer.shardPath(artifact: "feeds")
            do {
                let file = try H5File(path: path, mode: .create)
                try file.root.write("user_id", feeds.users)
                try file.root.write("pin_id", feeds.pins, shape: [feeds.users.count, k])
                try file.root.setAttribute("k", Int64(k))
                try file.root.setAttribute("cut_ms", cut)
                try file.root.setAttribute("source_run", source)
            }
            try writer.record(artifact: "feeds", path: path, rows: feeds.users.count)
            let manifest = try writer.commit()

            // Evaluation on the held-out saves (and the world's truth, for a generated world).
            var table = ""
            if feed.holdoutDays > 0 {
                let maxSeen = try comm.allreduce(Int64(users.map { $0.seen(before: cut).count }.max() ?? 0), op: .max)
                let popular = try FeedPrecompute.mostSaved(users, before: cut, m: k + Int(maxSeen), comm: comm)
                let evaluation = FeedEvaluation(k: k, world: FeedEvaluation.world(of: reader.run), cut: cut)
                var policies: [(name: String, feeds: [[Int64]])] = [
                    ("content channel + diversity re-rank (the published feeds)", feeds.userFeeds(k: k, \.pins)),
                    ("content channel, no re-rank", feeds.userFeeds(k: k, \.plain)),
                    (
                        "most saved pins (popularity)",
                        users.map { u in
                            let seen = u.seen(before: cut)
                            return Array(popular.lazy.filter { !seen.contains($0) }.prefix(k))
                        }
                    ),
                ]
                if trending != nil {
                    policies.append(
                        (
                            "trending by category (save rate, last \(feed.trendingDays) days)",
                            feeds.userFeeds(k: k, \.trending)
                        ))
                }
                let rows = try evaluation.evaluate(users: users, policies: policies, comm: comm)
                table = FeedEvaluation.markdown(rows, k: k, holdoutDays: feed.holdoutDays)
                if evaluation.world != nil {
                    // Candidate recall of the oracle set, per channel and merged, at 100 and the pool size.
                    let sizes = Array(Set([min(100, job.poolSize), job.poolSize])).sorted()
                    let merged = zip(feeds.contentCandidates, feeds.trendingCandidates).map {
                        Candidates.merge([$0, $1], count: 2 * job.poolSize)
                    }
                    let channels: [(name: String, candidates: [[Int64]])] = [
                        ("content (multi-interest IVF)", feeds.contentCandidates),
                        ("trending by category", feeds.trendingCandidates),
                        ("merged (round-robin, de-duplicated)", merged),
                    ]
                    let recall = try evaluation.candidateRecall(
                        users: users, channels: channels, sizes: sizes + [2 * job.poolSize], comm: comm)
                    table +=
                        "\n\n" + FeedEvaluation.markdown(recall, sizes: sizes + [2 * job.poolSize], oracleCount: 100)
                }
            }
            let filled = try comm.allreduce(Int64(feeds.pins.filter { $0 >= 0 }.count))
            let totalUsers = try comm.allreduce(Int64(feeds.users.count))
            if comm.isRoot {
                print(
                    String(
                        format:
                            "FEED PRECOMPUTE ranks=%d users=%lld k=%d filled_slots=%lld seconds=%.2f users_per_s=%.0f run=%@",
                        comm.size, totalUsers, k, filled, seconds, Double(totalUsers) / max(seconds, 1e-9),
                        manifest.runID))
                print(
                    "published: \(URL(fileURLWithPath: out).appendingPathComponent("runs").appendingPathComponent(manifest.runID).path)"
                )
                if !table.isEmpty {
                    print("")
                    print(table)
                }
            }
        }
    }
}

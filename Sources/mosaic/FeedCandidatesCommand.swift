import ArgumentParser
import Collective
import EventData
import Evaluation
import Events
import Feed
import Foundation
import ProcessKit
import Publishing

/// `mosaic feed candidates`: every user's merged candidates from the retrieval channels,
/// published as one HDF5 shard per rank.
struct FeedCandidatesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "candidates",
        abstract: "Every user's merged candidates from the retrieval channels (content, trending), published.",
        discussion: """
            Channels: content (multi-interest IVF over content embeddings: one query per most engaged \
            category, --pool pins shared in proportion to engagement), trending (per category, the \
            best smoothed save rate over the last --trending-days, slots in proportion to the user's \
            engaged categories) and, with --walks, Pixie (the walks' importance neighbours of the \
            user's --recent engaged pins, weighted 1/(1 + age rank)) and, with --pinsage-embeddings \
            and --pinsage-index, PinSage (the content channel's multi-interest retrieval over the \
            night's PinSage vectors and their IVF index). Seen pins are left out. The lists are merged round-robin and \
            de-duplicated, up to --count per user, each candidate keeping the channels that proposed \
            it and its rank in each (docs/feed.md has the HDF5 layout). Users stay on the rank of \
            their event shards; progress with users/s and ETA on rank 0. Writes <out>/summary.json \
            (users, candidates per user and, with a hold-out, the recalls below) for `mosaic evaluate`.

            With --holdout-days D > 0 the candidates come from the events before the last D days, \
            and a generated world's truth reports each channel's recall of the oracle set (each \
            user's 100 pins with the highest true save probability).
            """)

    @OptionGroup var feed: FeedOptions
    @Option(help: "Root folder the candidates are published under.") var out = "out/candidates"
    @Option(help: "Run id (default: candidates-<dataset run id>[-holdout<D>]).") var runID: String?
    @Option(help: "Merged candidates per user.") var count = 1_000
    @Option(help: "Candidates per channel.") var pool = 500
    @OptionGroup var channels: CandidateChannelOptions

    func validate() throws {
        guard count >= 1, pool >= 1 else { throw ValidationError("--count and --pool must be ≥ 1") }
    }

    func run() throws {
        Communicator.runJob { comm in
            let started = now()
            let reader = try DatasetReader(root: URL(fileURLWithPath: feed.world))
            let source = reader.run.manifest.runID
            comm.log("feed candidates: dataset \(source), \(comm.size) rank(s)")
            let users = try UserEvents.load(world: reader, comm: comm)
            let profiles = try UserProfile.load(world: reader, comm: comm)
            let cut = try UserEvents.cut(holdoutDays: feed.holdoutDays, users: users, comm: comm)
            var generation = try CandidateGeneration.prepare(
                inputs: channels.inputs(world: reader, trendingDays: feed.trendingDays), users: users,
                profiles: profiles, cut: cut, pool: pool, comm: comm)
            feed.configure(&generation.settings)
            generation.count = count
            try channels.configure(&generation)
            let loadSeconds = now() - started
            let t0 = now()
            var lastLog = 0.0
            let result = try generation.run(users: users, cut: cut, keepLists: feed.holdoutDays > 0, comm: comm) {
                done, total in
                guard now() - lastLog > 2 || done == total else { return }
                lastLog = now()
                let rate = Double(done) / max(now() - t0, 1e-9)
                comm.log(
                    String(
                        format: "  candidates: %d / %d users (%.0f users/s, ETA %.0f s)", done, total, rate,
                        Double(total - done) / max(rate, 1e-9)))
            }
            let candidates = result.merged
            let retrieveSeconds = now() - t0
            let seconds = now() - t0
            let id = runID ?? "candidates-\(source)" + (feed.holdoutDays > 0 ? "-holdout\(feed.holdoutDays)" : "")
            let writer = try RunWriter(
                root: URL(fileURLWithPath: out), runID: id, producer: "mosaic feed candidates",
                config: [
                    "world": source, "count": "\(count)", "pool": "\(pool)", "trending_days": "\(feed.trendingDays)",
                    "holdout_days": "\(feed.holdoutDays)", "channels": candidates.channelNames.joined(separator: ","),
                    "walks": channels.walks ?? "", "pinsage_embeddings": channels.pinsageEmbeddings ?? "",
                    "pinsage_index": channels.pinsageIndex ?? "", "user_vectors": channels.userVectors ?? "",
                ], comm: comm)
            try candidates.write(to: writer, cutMs: cut, sourceRun: source)
            let manifest = try writer.commit()
            let mergeWriteSeconds = now() - t0 - retrieveSeconds
            var table = "", recall: (rows: [FeedEvaluation.CandidateRow], sizes: [Int]) = ([], [])
            if feed.holdoutDays > 0, let world = FeedEvaluation.world(of: reader.run) {
                recall = try result.evaluateRows(
                    users: users, cut: cut, world: world, pool: pool, count: count, seenDays: feed.seenDays, comm: comm)
                table = FeedEvaluation.markdown(recall.rows, sizes: recall.sizes, oracleCount: 100)
            }
            let totalUsers = try comm.allreduce(Int64(users.count))
            let totalCandidates = try comm.allreduce(Int64(candidates.pins.count))
            if comm.isRoot {  // recall per channel for `mosaic evaluate` (none without a hold-out)
                let summary = CandidatesSummary(
                    rows: recall.rows, sizes: recall.sizes, users: Int(totalUsers),
                    candidatesPerUser: Double(totalCandidates) / Double(max(totalUsers, 1)),
                    holdoutDays: recall.rows.isEmpty ? 0 : feed.holdoutDays)
                try StageSummary.write(summary, to: StageSummary.path(besideArtifact: out))
            }
            let memory = try comm.peakMemoryPerRank()
            let slowestLoad = try comm.allreduce(loadSeconds, op: .max)
            var channelSeconds: [String] = []
            for name in result.seconds.keys.sorted() {
                let slowest = try comm.allreduce(result.seconds[name]!, op: .max)
                channelSeconds.append(String(format: "%@:%.2f", name, slowest))
            }
            if comm.isRoot {
                if feed.holdoutDays > 0 {
                    print("cut_ms=\(cut) (build the walks' graph with `graph build --before-ms \(cut)`)")
                }
                print(
                    String(
                        format:
                            "FEED CANDIDATES ranks=%d users=%lld candidates=%lld seconds=%.2f users_per_s=%.0f load_s=%.2f retrieve_s=%.2f merge_write_s=%.2f channel_s=%@ peak_rss_mib=%@ run=%@",
                        comm.size, totalUsers, totalCandidates, seconds, Double(totalUsers) / max(seconds, 1e-9),
                        slowestLoad, retrieveSeconds, mergeWriteSeconds, channelSeconds.joined(separator: ","), memory,
                        manifest.runID))
                if !table.isEmpty { print("\n" + table) }
            }
        }
    }
}

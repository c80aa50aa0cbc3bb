import ArgumentParser
import Collective
import EventData
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
            their event shards; progress with users/s and ETA on rank 0.

            With --holdout-days D > 0 the candidates come from the events before the last D days, \
            and a generated world's truth reports each channel's recall of the oracle set (each \
            user's 100 pins with the highest true save probability).
            """)

    @OptionGroup var feed: FeedOptions
    @Option(help: "Root folder the candidates are published under.") var out = "out/candidates"
    @Option(help: "Run id (default: candidates-<dataset run id>[-holdout<D>]).") var runID: String?
    @Option(help: "Merged candidates per user.") var count = 1_000
    @Option(help: "Candidates per channel.") var pool = 500
    @Option(help: "Pixie channel: root of a walks run (`mosaic graph walks`) over the dataset's graph; optional.")
    var walks: String?
    @Option(help: "PinSage channel: root of an embeddings run (`mosaic pinsage embed`); with --pinsage-index.")
    var pinsageEmbeddings: String?
    @Option(
        help: "PinSage channel: root of the index run over those embeddings (`mosaic index build --embeddings --out`).")
    var pinsageIndex: String?
    @Option(
        help:
            "Two-tower channel: root of a user-vectors run (`mosaic retrieval embed-users`) over the PinSage embeddings; needs --pinsage-index."
    )
    var userVectors: String?
    @Option(
        help:
            "Fresh channel: pins created in the last D days before the cut, by content similarity to the user's interests; 0 turns it off."
    )
    var freshDays = 2
    @Option(
        help:
            "Merge weights, e.g. `two-tower=2,fresh=0.5`: each channel's share of the merged slots is its weight over the sum (0 drops a channel from the merge); defaults, tuned on the validation world: content=2, trending=4, pixie=1, fresh=0.25, pinsage=0.5, two-tower=4, user-cf=0.5."
    )
    var channelWeights = ""

    /// `--channel-weights` parsed.
    var weights: [String: Double] {
        get throws {
            var out: [String: Double] = [:]
            for item in channelWeights.split(separator: ",") {
                let parts = item.split(separator: "=")
                guard parts.count == 2, let w = Double(parts[1]), w >= 0 else {
                    throw ValidationError("--channel-weights: expected name=weight (weight ≥ 0), found '\(item)'")
                }
                out[String(parts[0])] = w
            }
            return out
        }
    }
    @Option(
        help:
            "User–user CF channel (with --user-vectors): the recent saves of this many nearest users in two-tower space; 0 turns it off."
    )
    var cfNeighbours = 100
    @Flag(
        inversion: .prefixedNo,
        help:
            "PinSage channel: interests as clusters of the engaged pins' PinSage vectors (PinnerSage medoids) instead of the most engaged categories."
    )
    var pinsageClusters = false

    func validate() throws {
        _ = try weights
        guard count >= 1, pool >= 1, cfNeighbours >= 0, freshDays >= 0 else {
            throw ValidationError("--count and --pool must be ≥ 1, --cf-neighbours and --fresh-days ≥ 0")
        }
        guard (pinsageEmbeddings == nil) == (pinsageIndex == nil) else {
            throw ValidationError("pass both --pinsage-embeddings and --pinsage-index, or neither")
        }
        guard userVectors == nil || pinsageIndex != nil else {
            throw ValidationError(
                "--user-vectors searches the PinSage index: pass --pinsage-embeddings and --pinsage-index")
        }
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
            var inputs = CandidateGeneration.Inputs(world: reader)
            inputs.walks = walks.map { URL(fileURLWithPath: $0) }
            inputs.pinsageEmbeddings = pinsageEmbeddings.map { URL(fileURLWithPath: $0) }
            inputs.pinsageIndex = pinsageIndex.map { URL(fileURLWithPath: $0) }
            inputs.userVectors = userVectors.map { URL(fileURLWithPath: $0) }
            inputs.freshDays = freshDays
            inputs.cfNeighbours = cfNeighbours
            inputs.trendingDays = feed.trendingDays
            var generation = try CandidateGeneration.prepare(
                inputs: inputs, users: users, profiles: profiles, cut: cut, pool: pool, comm: comm)
            feed.configure(&generation.settings)
            generation.count = count
            generation.pinsageClusters = pinsageClusters
            generation.weights.merge(try weights) { _, new in new }
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
                    "walks": walks ?? "", "pinsage_embeddings": pinsageEmbeddings ?? "",
                    "pinsage_index": pinsageIndex ?? "", "user_vectors": userVectors ?? "",
                ], comm: comm)
            try candidates.write(to: writer, cutMs: cut, sourceRun: source)
            let manifest = try writer.commit()
            let mergeWriteSeconds = now() - t0 - retrieveSeconds
            var table = ""
            if feed.holdoutDays > 0, let world = FeedEvaluation.world(of: reader.run) {
                table = try result.evaluate(
                    users: users, cut: cut, world: world, pool: pool, count: count, seenDays: feed.seenDays, comm: comm)
            }
            let totalUsers = try comm.allreduce(Int64(users.count))
            let totalCandidates = try comm.allreduce(Int64(candidates.pins.count))
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

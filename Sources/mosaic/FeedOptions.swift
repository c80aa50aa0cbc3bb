import ArgumentParser
import Feed

/// Options shared by `feed candidates` and `feed precompute`: the dataset, the retrieval
/// channels' settings, the rounds and the evaluation hold-out.
struct FeedOptions: ParsableArguments {
    @Option(help: "Root folder of the dataset runs (its `current` run is read).") var world = "out/world"
    @Option(help: "Content channel: interests (most engaged categories) per user, one query each.") var interests = 5
    @Option(help: "Content channel: most recent engaged pins averaged into the queries.") var recent = 50
    @Option(help: "Content channel: inverted lists probed per query.") var nprobe = 16
    @Option(help: "Trending channel: days of engagement before the cut (14: best under the truth, docs/feed.md).")
    var trendingDays = 14
    @Option(help: "Users per rank per round (bounds the memory of one round).") var batchUsers = 256
    @Option(
        help:
            "Hold out the last D days of events: build from the events before them and evaluate on them (0 = use every event)."
    )
    var holdoutDays = 0
    @Option(
        help:
            "Leave out pins shown in the last D days before the cut (saved or hidden pins always); default: every pin the user has seen."
    )
    var seenDays: Int?

    func validate() throws {
        guard interests >= 1, recent >= 1, nprobe >= 1, batchUsers >= 1, trendingDays >= 1, holdoutDays >= 0,
            (seenDays ?? 0) >= 0
        else {
            throw ValidationError(
                "--interests, --recent, --nprobe, --batch-users and --trending-days must be ≥ 1; --holdout-days and --seen-days ≥ 0"
            )
        }
    }

    /// Copies the retrieval settings into `job`.
    func configure(_ job: inout FeedPrecompute) {
        job.interests = interests
        job.recent = recent
        job.nprobe = nprobe
        job.batchUsers = batchUsers
        job.seenDays = seenDays
    }
}

import ArgumentParser
import Collective
import EventData
import Events
import Feed
import Foundation

/// `mosaic feed preview`: one user's feed from the content channel, checked against the saves the
/// user made after the feed's cut time.
struct FeedPreview: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preview",
        abstract: "Show one user's feed from the content retrieval channel (distributed IVF over pin embeddings).",
        discussion: """
            Reads the published dataset at --world (e.g. from `mosaic generate`), builds an IVF-Flat \
            index over every pin's content embedding (distributed k-means; each rank indexes its \
            shard), and retrieves for --user the pins nearest to each of the user's interests: the \
            mean embedding of the pins engaged with (closeup, click, save) in each of the user's \
            most engaged categories before the cut — the time at --history of the user's events. \
            Feed slots are shared in proportion to engagement. Pins the user already saw before the cut are left out. \
            A pool of --pool candidates is retrieved that way (relevance = that order), then the diversity re-rank (MMR over \
            content embeddings with --diversity, under a cap of --max-per-category pins of one \
            category in any --window consecutive slots) picks the --k slots. The feed is printed \
            with each pin's category and whether the user saved it after the cut, and the \
            diversity of the feed beside the same feed without the re-rank.

            This is the content channel alone: the ranker and the other retrieval channels join \
            the feed as their stages land.
            """)

    @Option(help: "Root folder of the dataset runs (its `current` run is read).") var world = "out/world"
    @Option(help: "User id; default: the user with the most saves.") var user: Int64?
    @Option(help: "Fraction of the user's events (in time order) before the cut.") var history = 0.8
    @Option(help: "Most recent engaged pins averaged into the query.") var recent = 50
    @Option(help: "Feed length.") var k = 20
    @Option(help: "Interests (the user's most engaged categories), one retrieval query each.") var interests = 5
    @Option(help: "Inverted lists probed per query.") var nprobe = 16
    @Option(help: "Candidates retrieved before the diversity re-rank (0 = 4 × --k).") var pool = 0
    @Option(help: "Diversity re-rank λ: 1 = relevance order only, lower = more novelty (MMR).") var diversity = 0.7
    @Option(help: "Sliding window (slots) of the category cap and the similarity penalty.") var window = 8
    @Option(help: "Pins of one category allowed in any --window consecutive slots.") var maxPerCategory = 3

    func run() throws {
        Communicator.runJob { comm in
            guard history > 0, history < 1 else { throw ValidationError("--history must be in (0, 1), got \(history)") }
            guard (0...1).contains(diversity) else {
                throw ValidationError("--diversity must be in [0, 1], got \(diversity)")
            }
            guard window >= 1, maxPerCategory >= 1, k >= 1, pool >= 0 else {
                throw ValidationError("--k, --window and --max-per-category must be ≥ 1 and --pool ≥ 0")
            }
            let poolSize = max(k, pool == 0 ? 4 * k : pool)
            let reader = try DatasetReader(root: URL(fileURLWithPath: world))
            comm.log(
                "feed preview: dataset \(reader.run.manifest.runID) (\(reader.run.directory.path)), \(comm.size) rank(s)"
            )
            let t0 = Date()
            let channel = try ContentChannel.build(world: reader, comm: comm)
            let pins = try comm.allreduce(Int64(channel.ids.count))
            comm.log(
                String(
                    format: "  content index: %lld pins, d = %d, nlist = %d, built in %.1f s",
                    pins, channel.d, channel.index.nlist, Date().timeIntervalSince(t0)))
            let who = try user ?? mostActiveSaver(reader, comm)
            let h = try UserEvents.load(user: who, world: reader, comm: comm)
            guard h.pins.count >= 2 else {
                throw ValidationError("user \(who) has \(h.pins.count) event(s) in \(world); pick another --user")
            }
            let cut = h.times[min(h.times.count - 1, Int(Double(h.times.count) * history))]
            let engaged = Array(h.engaged(before: cut).suffix(recent))
            guard !engaged.isEmpty else {
                throw ValidationError(
                    "user \(who) engaged with no pin before the cut; pick another --user or raise --history")
            }
            let seen = h.seen(before: cut)
            let savedLater = h.saved(from: cut)
            let candidates = try channel.multiInterestFeed(
                engaged: engaged, k: poolSize, interests: interests, exclude: seen, nprobe: nprobe, comm: comm)
            let (_, cats) = try channel.lookup(engaged, comm: comm)
            let (poolEmbeddings, poolCats) = try channel.lookup(candidates.map(\.pin), comm: comm)
            // Relevance = the channel's order (interests round-robin in proportion to engagement,
            // nearest first), so λ = 1 keeps the channel's feed. The re-rank is deterministic:
            // every rank computes the same feed.
            let rerank = DiversityRerank(lambda: diversity, window: window, maxPerCategory: maxPerCategory)
            let order = rerank.order(
                scores: candidates.indices.map { -Float($0) }, categories: poolCats, embeddings: poolEmbeddings,
                d: channel.d, k: k)
            let feed = order.map { candidates[$0] }
            let feedCats = order.map { poolCats[$0] }
            guard comm.isRoot else { return }
            func meanCosine(_ rows: [Int]) -> Double {
                var sum = 0.0, pairs = 0
                for a in rows.indices {
                    for b in rows.indices where b > a {
                        var dot: Float = 0, na: Float = 0, nb: Float = 0
                        for j in 0..<channel.d {
                            let x = poolEmbeddings[rows[a] * channel.d + j], y = poolEmbeddings[rows[b] * channel.d + j]
                            dot += x * y; na += x * x; nb += y * y
                        }
                        sum += Double(dot / max((na * nb).squareRoot(), 1e-20)); pairs += 1
                    }
                }
                return pairs > 0 ? sum / Double(pairs) : 0
            }
            let plain = Array(0..<min(k, candidates.count))

            var catCounts: [Int32: Int] = [:]
            for c in cats where c >= 0 { catCounts[c, default: 0] += 1 }
            let topCats = catCounts.sorted { ($0.value, -$0.key) > ($1.value, -$1.key) }.prefix(5)
            print(
                "user \(who): \(h.pins.count) events; cut at event \(Int(Double(h.times.count) * history)) (t = \(cut) ms); "
                    + "\(engaged.count) engaged pins before it, \(savedLater.count) pins saved after it")
            print(
                "engaged categories before the cut: " + topCats.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
            )
            print("")
            print("| # | pin | category | distance | saved after the cut |")
            print("|---:|---:|---:|---:|:---:|")
            for (i, item) in feed.enumerated() {
                print(
                    String(
                        format: "| %d | %lld | %d | %.3f | %@ |", i + 1, item.pin, feedCats[i], item.distance,
                        savedLater.contains(item.pin) ? "yes" : ""))
            }
            let inEngaged = feedCats.filter { catCounts[$0] != nil }.count
            let hits = feed.filter { savedLater.contains($0.pin) }.count
            print("")
            print(
                "feed: \(feed.count) pins, \(inEngaged) in a category the user engaged with, "
                    + "\(hits) saved by the user after the cut (of \(savedLater.count) later saves)")
            let plainHits = plain.filter { savedLater.contains(candidates[$0].pin) }.count
            print(
                String(
                    format: "diversity re-rank (λ %.2f, ≤ %d per category in %d slots, pool %d): %d categories, "
                        + "at most %d of one in %d slots, mean pairwise cosine %.3f, %d later saves; "
                        + "without it: %d categories, at most %d, cosine %.3f, %d later saves",
                    diversity, maxPerCategory, window, candidates.count, Set(feedCats).count,
                    DiversityRerank.maxCategoryRun(feedCats, window: window), window, meanCosine(order), hits,
                    Set(plain.map { poolCats[$0] }).count,
                    DiversityRerank.maxCategoryRun(plain.map { poolCats[$0] }, window: window),
                    meanCosine(plain), plainHits))
        }
    }

    /// The user with the most saves (ties: smaller id). Collective.
    func mostActiveSaver(_ reader: DatasetReader, _ comm: Communicator) throws -> Int64 {
        var best: (count: Int64, user: Int64) = (0, -1)
        for path in try reader.myShards("events", comm: comm) {
            let t = try DatasetReader.readShard(path, entity: "events")
            var counts: [Int64: Int64] = [:]
            let users = t.i64("user_id"), types = t.uint8["event_type"]!
            for i in 0..<t.count where types[i] == EventType.save.rawValue { counts[users[i], default: 0] += 1 }
            for (u, c) in counts where c > best.count || (c == best.count && u < best.user) { best = (c, u) }
        }
        let all = try comm.allgather([best.count, best.user])
        var pick: (count: Int64, user: Int64) = (0, -1)
        for r in 0..<comm.size where all[2 * r + 1] >= 0 {
            let c = all[2 * r], u = all[2 * r + 1]
            if c > pick.count || (c == pick.count && u < pick.user) { pick = (c, u) }
        }
        guard pick.user >= 0 else { throw ValidationError("no user in \(world) saved anything; pass --user") }
        return pick.user
    }
}

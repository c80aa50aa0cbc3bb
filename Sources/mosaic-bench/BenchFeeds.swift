import ArgumentParser
import Foundation
import ProcessKit

/// `mosaic-bench feeds`: the whole per-user precompute (`feed candidates` with every channel,
/// then `feed rank`: ranker, calibrated score, diversity re-rank, fresh slots, writing) on a
/// generated world, on each rank count: users/s per rank, seconds per stage, peak memory per rank.
struct BenchFeeds: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feeds",
        abstract: "Whole feed precompute (candidates + rank + re-rank) users/s per rank, 1 vs 2 ranks.",
        discussion: """
            Run WITHOUT mpirun, from a release build. Generates a world of --users and --pins (2 ranks), \
            the night's runs (graph, walks, PinSage, index, two-tower, user vectors) and a ranker \
            (`ranker train --data`, a short bench training), all on 2 ranks; then on each rank count \
            `feed candidates --count --pool` (every channel) and `feed rank` over those candidates \
            (--keep ranked per user). Users/s of the precompute = users / (candidates' retrieve + \
            merge + write seconds + ranking seconds, ranking including its re-rank and writing); the \
            jobs' load phases (reading the world, building the content and fresh IVFs, loading the \
            night's runs) are listed apart. The ratio column is users/s against the 1-rank run of the \
            same binary.
            """)

    @Option(help: "World users.") var users = 100_000
    @Option(help: "World pins (initial catalogue; 1,000 fresh pins per day are added).") var pins = 1_000_000
    @Option(help: "Rank counts to compare, comma-separated.") var ranks = "1,2"
    @Option(help: "Merged candidates per user: every one is ranked (500: the issue's goal).") var count = 500
    @Option(help: "Candidates per channel.") var pool = 500
    @Option(help: "Ranked candidates kept per user (`feed rank --keep`).") var keep = 500
    @Option(help: "PinSage training steps and two-tower epochs / 50 (bench settings, not the defaults).")
    var trainSteps = 100
    @Option(help: "Ranker training steps (one epoch).") var rankerSteps = 50
    @Option(help: "Work folder (deleted afterwards unless --keep-files).") var work = "out/bench-feeds"
    @Flag(help: "Keep the generated files.") var keepFiles = false

    func run() throws {
        let rankCounts = try benchRankCounts(ranks)
        let workURL = try freshDirectory(work)
        defer { if !keepFiles { try? FileManager.default.removeItem(at: workURL) } }
        func path(_ name: String) -> String { workURL.appendingPathComponent(name).path }
        let world = path("world")
        let gen = try benchGenerateWorld(users: users, pins: pins, out: world)
        let channels = try benchNight(world: world, work: workURL, trainSteps: trainSteps)
        let t = now()
        let ranker = try benchRun(
            2,
            [
                "ranker", "train", "--data", world, "--embeddings", path("emb"), "--user-model", path("tt"), "--epochs",
                "1", "--max-steps-per-epoch", "\(rankerSteps)", "--out", path("ranker.h5"),
            ])
        guard ranker.status == 0 else { throw ValidationError("ranker train failed:\n\(ranker.output.suffix(2000))") }
        log(String(format: "night: ranker train in %.1f s", now() - t))
        var table = [
            "| ranks | users | candidates: load s | retrieve s | merge + write s | rank: load s | rank + re-rank + write s | precompute users/s | users/s per rank | vs 1 rank | peak RSS per rank, candidates / rank (MiB) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        var base: Double? = nil
        for n in rankCounts {
            let c = try benchParse(
                try benchRun(
                    n,
                    [
                        "feed", "candidates", "--world", world, "--out", path("c\(n)"), "--count", "\(count)", "--pool",
                        "\(pool)",
                    ] + channels), prefix: "FEED CANDIDATES")
            log("\(n) rank(s) candidates: \(c)")
            let r = try benchParse(
                try benchRun(
                    n,
                    [
                        "feed", "rank", "--world", world, "--candidates", path("c\(n)"), "--embeddings", path("emb"),
                        "--ranker", path("ranker.h5"), "--user-model", path("tt"), "--out", path("f\(n)"), "--keep",
                        "\(keep)",
                    ]), prefix: "FEED RANK")
            log("\(n) rank(s) rank: \(r)")
            let retrieve = Double(c["retrieve_s"]!)!, mergeWrite = Double(c["merge_write_s"]!)!
            let rankSeconds = Double(r["rank_s"]!)!, rankTotal = Double(r["seconds"]!)!
            let rate = Double(c["users"]!)! / (retrieve + mergeWrite + rankSeconds)
            base = base ?? (n == 1 ? rate : nil)
            table.append(
                String(
                    format: "| %d | %@ | %@ | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f | %@ | %@ / %@ |", n, c["users"]!,
                    c["load_s"]!, retrieve, mergeWrite, rankTotal - rankSeconds, rankSeconds, rate, rate / Double(n),
                    base.map { String(format: "%.2f×", rate / $0) } ?? "–", c["peak_rss_mib"]!, r["peak_rss_mib"]!))
        }
        print(
            "feed precompute on a world of \(gen["users"]!) users, \(gen["pins"]!) pins, \(gen["events"]!) events; --count \(count) --pool \(pool) --keep \(keep)"
        )
        print("")
        print(table.joined(separator: "\n"))
    }

    func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
}

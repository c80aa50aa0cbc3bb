import ArgumentParser
import Foundation
import ProcessKit

/// `mosaic-bench retrieval`: the candidate stage (`mosaic feed candidates`) on a generated world,
/// on each rank count: users/s (per rank), time per phase, peak memory per rank.
struct BenchRetrieval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrieval",
        abstract: "Candidates users/s per rank (1 vs 2 ranks), time per channel phase, peak memory per rank.",
        discussion: """
            Run WITHOUT mpirun (it launches `mpirun -np N` on the `mosaic` jobs beside it), from a \
            release build. Generates a world of --users and --pins once (2 ranks); with --night also \
            the night's runs on 2 ranks (graph, walks, PinSage train and embed, index, two-tower train \
            and user vectors) so that every channel runs; then `mosaic feed candidates --count --pool` \
            on each rank count. Phases: load (read the pins, build the content and fresh IVFs, \
            trending tables, load the night's runs), retrieve (every channel, per user; the seconds of \
            each channel are listed), merge + write. The \
            ratio column is users/s against the 1-rank run of the same binary (the peer here is the \
            single rank: no external system runs this funnel stage).
            """)

    @Option(help: "World users.") var users = 100_000
    @Option(help: "World pins (initial catalogue; 1,000 fresh pins per day are added).") var pins = 1_000_000
    @Option(help: "Rank counts to compare, comma-separated.") var ranks = "1,2"
    @Option(help: "Merged candidates per user.") var count = 1_000
    @Option(help: "Candidates per channel.") var pool = 500
    @Option(help: "Work folder (deleted afterwards unless --keep).") var work = "out/bench-retrieval"
    @Flag(help: "Keep the generated files.") var keep = false
    @Flag(help: "Build the night's runs first so that every channel runs (PinSage, two-tower, user–user CF, Pixie).")
    var night = false
    @Option(help: "With --night: PinSage training steps and two-tower epochs (bench settings, not the defaults).")
    var trainSteps = 100

    func run() throws {
        let rankCounts = try benchRankCounts(ranks)
        let workURL = try freshDirectory(work)
        defer { if !keep { try? FileManager.default.removeItem(at: workURL) } }
        let world = workURL.appendingPathComponent("world").path
        let gen = try benchGenerateWorld(users: users, pins: pins, out: world)
        let channels = night ? try benchNight(world: world, work: workURL, trainSteps: trainSteps) : []
        var table = [
            "| ranks | users/s | users/s per rank | load s | retrieve s | seconds per channel (slowest rank) | merge + write s | candidates / user | peak RSS per rank (MiB) | vs 1 rank |",
            "|---:|---:|---:|---:|---:|---|---:|---:|---|---:|",
        ]
        var base: Double? = nil
        for n in rankCounts {
            let f = try benchParse(
                try benchRun(
                    n,
                    [
                        "feed", "candidates", "--world", world, "--out", workURL.appendingPathComponent("c\(n)").path,
                        "--count", "\(count)", "--pool", "\(pool)",
                    ] + channels, forwardStderr: false), prefix: "FEED CANDIDATES")
            let rate = Double(f["users_per_s"]!)!
            base = base ?? (n == 1 ? rate : nil)
            let perUser = Double(f["candidates"]!)! / Double(f["users"]!)!
            table.append(
                String(
                    format: "| %d | %.0f | %.0f | %@ | %@ | %@ | %@ | %.0f | %@ | %@ |", n, rate, rate / Double(n),
                    f["load_s"]!, f["retrieve_s"]!, f["channel_s"]!.replacingOccurrences(of: ",", with: ", "),
                    f["merge_write_s"]!, perUser,
                    f["peak_rss_mib"]!, base.map { String(format: "%.2f×", rate / $0) } ?? "–"))
            log("\(n) rank(s): \(f)")
        }
        print(
            "candidates on a world of \(gen["users"]!) users, \(gen["pins"]!) pins, \(gen["events"]!) events; --count \(count) --pool \(pool)"
        )
        print("")
        print(table.joined(separator: "\n"))
    }

    func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
}

/// The night's runs on 2 ranks in `work` (graph, walks, PinSage train and embed, index,
/// two-tower train and user vectors; `trainSteps` PinSage steps, `trainSteps / 50` two-tower
/// epochs), logged to stderr; returns the `feed candidates` options of every channel they feed.
/// Generates the benchmark world (`users` users, `pins` pins plus 1,000 fresh per day) on 2
/// ranks at `out`, logs its size to stderr and returns the generator's figures (users, pins,
/// events).
func benchGenerateWorld(users: Int, pins: Int, out world: String) throws -> [String: String] {
    let gen = try benchParse(
        try benchRun(
            2,
            [
                "generate", "--users", "\(users)", "--pins", "\(pins)", "--fresh-pins-per-day", "1000", "--out", world,
            ]),
        prefix: "GENERATE")
    FileHandle.standardError.write(
        Data("world: \(gen["users"]!) users, \(gen["pins"]!) pins, \(gen["events"]!) events\n".utf8))
    return gen
}

func benchNight(world: String, work: URL, trainSteps: Int) throws -> [String] {
    func path(_ name: String) -> String { work.appendingPathComponent(name).path }
    let steps: [(String, [String])] = [
        ("graph", ["graph", "build", "--data", world, "--out", path("graph")]),
        ("walks", ["graph", "walks", "--graph", path("graph"), "--out", path("walks")]),
        (
            "pinsage train",
            [
                "pinsage", "train", "--data", world, "--walks", path("walks"), "--out", path("pinsage"), "--steps",
                "\(trainSteps)",
            ]
        ),
        (
            "pinsage embed",
            [
                "pinsage", "embed", "--data", world, "--walks", path("walks"), "--model", path("pinsage"), "--out",
                path("emb"),
            ]
        ),
        ("index", ["index", "build", "--embeddings", path("emb"), "--out", path("ivf"), "--quiet"]),
        (
            "two-tower train",
            [
                "retrieval", "train", "--data", world, "--embeddings", path("emb"), "--out", path("tt"), "--epochs",
                "\(max(1, trainSteps / 50))",
            ]
        ),
        (
            "user vectors",
            [
                "retrieval", "embed-users", "--data", world, "--embeddings", path("emb"), "--model", path("tt"),
                "--out", path("uv"),
            ]
        ),
    ]
    for (name, arguments) in steps {
        let t = now()
        let r = try benchRun(2, arguments, forwardStderr: false)
        guard r.status == 0 else { throw ValidationError("\(name) failed:\n\(r.output.suffix(2000))") }
        FileHandle.standardError.write(Data(String(format: "night: %@ in %.1f s\n", name, now() - t).utf8))
    }
    return [
        "--walks", path("walks"), "--pinsage-embeddings", path("emb"), "--pinsage-index", path("ivf"),
        "--user-vectors", path("uv"),
    ]
}

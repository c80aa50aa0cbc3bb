import ArgumentParser
import Collective
import EventData
import Events
import Foundation
import Linalg
import ProcessKit

/// `mosaic generate`: writes a synthetic world (users, pins, boards, saves, events with true
/// probabilities) as a sharded dataset run, identical whatever the number of ranks.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate a deterministic synthetic world with planted structure and an oracle.",
        discussion: """
            Writes <out>/runs/<run-id>/{users,pins,boards,saves,events}/part-R-of-P.h5 and a manifest,
            then points <out>/current at it. Events are sharded by user (hash mod ranks) and time-ordered
            within a user; pins and saves by pin; boards by board; users by user. Every impression carries
            the true probabilities p_closeup, p_click, p_save, p_hide. The output is the same for any rank
            count (`mosaic digest` prints a rank-independent digest). About 150 events per user on average
            (the heavy tail and the power users add more); size a world by --users.
            Example: Cluster/mpirun-local.sh -np 2 .build/release/mosaic generate --users 20000 --out out/world
            """)

    @Option(help: "Root folder of dataset runs.") var out = "out/world"
    @Option(help: "Run id (default: world-s<seed>-u<users>).") var runID: String?
    @Option(help: "Base seed of every random stream.") var seed: UInt64 = 42
    @Option(help: "Number of users.") var users = 2_000
    @Option(help: "Pins in the catalogue before day 0.") var pins = 20_000
    @Option(help: "Fresh pins created per simulated day.") var freshPinsPerDay = 1_000
    @Option(help: "Simulated days of activity.") var days = 14
    @Option(help: "Number of topics.") var topics = 24
    @Option(help: "Categories per topic.") var categoriesPerTopic = 4
    @Option(help: "Pin embedding dimension d.") var dimension = 32
    @Option(help: "Zipf exponent of pin popularity.") var zipf = 1.05
    @Option(help: "Session-count scale (sessions = scale × Pareto(1.5)).") var sessionScale = 2.0
    @Option(help: "Every k-th user is a power user with 5,000+ events (0: none).") var powerUserEvery = 500
    @Option(help: "Users generated per block (bounds memory per rank).") var blockUsers = 2_000

    var parameters: WorldParameters {
        var p = WorldParameters()
        p.seed = seed; p.users = users; p.initialPins = pins; p.freshPinsPerDay = freshPinsPerDay
        p.days = days; p.topics = topics; p.categoriesPerTopic = categoriesPerTopic; p.dimension = dimension
        p.zipfExponent = zipf; p.sessionScale = sessionScale; p.powerUserEvery = powerUserEvery
        return p
    }

    func validate() throws {
        guard users > 0, pins > 0, days > 0, topics > 0, categoriesPerTopic > 0, dimension > 0, blockUsers > 0 else {
            throw ValidationError(
                "--users, --pins, --days, --topics, --categories-per-topic, --dimension and --block-users must be positive"
            )
        }
        guard freshPinsPerDay >= 0, zipf > 0, sessionScale > 0, powerUserEvery >= 0 else {
            throw ValidationError(
                "--fresh-pins-per-day and --power-user-every must be ≥ 0; --zipf and --session-scale > 0")
        }
        guard pins >= topics else { throw ValidationError("--pins must be at least --topics") }
    }

    func run() throws {
        let p = parameters
        let id = runID ?? "world-s\(seed)-u\(users)"
        Communicator.runJob { comm in
            let t0 = now()
            let config = try JSONEncoder().encode(p)
            let writer = try DatasetWriter(
                root: URL(fileURLWithPath: out), runID: id, producer: "mosaic generate",
                config: ["world": String(decoding: config, as: UTF8.self)], comm: comm)
            let gen = WorldGenerator(p)
            let probs: Set<String> = ["p_closeup", "p_click", "p_save", "p_hide"]
            _ = try writer.writer(.users)
            _ = try writer.writer(.pins(dimension: p.dimension))
            _ = try writer.writer(.boards)
            _ = try writer.writer(.saves)
            _ = try writer.writer(
                .events, columns: EntitySchema.events.columns.filter { !$0.optional || probs.contains($0.name) })
            comm.log(
                "generate: \(users) users, \(p.totalPins) pins (\(pins) + \(freshPinsPerDay)/day × \(days) days), \(comm.size) rank(s) → \(out)/runs/\(id)"
            )

            // Pins: this rank's pins, in blocks of global indices.
            var pinCount = 0
            var block = 0
            while block < p.totalPins {
                let ids = (block..<min(p.totalPins, block + 100_000)).filter {
                    Sharding.owner(Int64($0), ranks: comm.size) == comm.rank
                }
                let t = gen.pins(ids)
                try writer.append(t)
                pinCount += t.count
                block += 100_000
            }

            // Users with their events; saves and boards are routed to their owners afterwards.
            let mine = (0..<users).filter { Sharding.owner(Int64($0), ranks: comm.size) == comm.rank }
            var saves = Table(schema: .saves)
            var boards = Table(schema: .boards)
            var events = 0
            var progress = JobProgress(comm: comm, label: "generate")
            let tEvents = now()
            let cpuEvents = ProcessStats.cpuSeconds()
            var i = 0
            while i < mine.count {
                let ids = Array(mine[i..<min(mine.count, i + blockUsers)])
                let b = gen.users(ids)
                try writer.append(b.users)
                try writer.append(b.events)
                saves.append(b.saves)
                boards.append(b.boards)
                events += b.events.count
                i += ids.count
                progress.update(done: i, total: mine.count, items: events, unit: "events")
            }
            let eventSeconds = try comm.allreduce(now() - tEvents, op: .max)
            let eventCPU = try comm.maxCPUSeconds(since: cpuEvents)
            let routedSaves = try saves.routed(
                to: saves.i64("pin_id").map { Sharding.owner($0, ranks: comm.size) }, comm: comm)
            let sp = routedSaves.i64("pin_id"), st = routedSaves.i64("saved_at_ms"), su = routedSaves.i64("user_id"),
                sb = routedSaves.i64("board_id")
            try writer.append(
                routedSaves.gathered(
                    (0..<routedSaves.count).sorted {
                        (sp[$0], st[$0], su[$0], sb[$0]) < (sp[$1], st[$1], su[$1], sb[$1])
                    }))
            let routedBoards = try boards.routed(
                to: boards.i64("board_id").map { Sharding.owner($0, ranks: comm.size) }, comm: comm)
            let bid = routedBoards.i64("board_id")
            try writer.append(routedBoards.gathered((0..<routedBoards.count).sorted { bid[$0] < bid[$1] }))
            try writer.commit()

            let totals = try comm.allgather([
                Int64(events), Int64(pinCount), Int64(routedSaves.count), Int64(routedBoards.count),
            ])
            var sum = [Int64](repeating: 0, count: 4)
            for (k, v) in totals.enumerated() { sum[k % 4] += v }
            let seconds = try comm.allreduce(now() - t0, op: .max)
            let memory = try comm.peakMemoryPerRank()
            comm.log(
                String(
                    format:
                        "generate: done: %d events, %d pins, %d saves, %d boards in %.2fs (events %.0f/s overall, %.0f/s per rank)",
                    sum[0], sum[1], sum[2], sum[3], seconds, Double(sum[0]) / eventSeconds,
                    Double(sum[0]) / eventSeconds / Double(comm.size)))
            if comm.isRoot {
                print(
                    String(
                        format:
                            "GENERATE ranks=%d users=%d pins=%d events=%d saves=%d boards=%d seconds=%.3f event_seconds=%.3f events_per_s=%.0f cpu_seconds=%.3f maxrss_mib=%@",
                        comm.size, users, sum[1], sum[0], sum[2], sum[3], seconds, eventSeconds,
                        Double(sum[0]) / eventSeconds, eventCPU, memory))
            }
        }
    }
}

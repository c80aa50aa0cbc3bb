import ArgumentParser
import EventData
import Events
import Foundation
import ProcessKit

/// `mosaic-bench data`: generation and import throughput on 1 and 2 ranks beside named peers.
struct BenchData: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract:
            "Generated events/s and imported rows/s per rank (1 vs 2 ranks), peak memory per rank, beside wc -l and a Python csv reader.",
        discussion: """
            Run WITHOUT mpirun (it launches `mpirun -np N` on this binary itself), from a release build:
              Cluster/bench/data.sh            (= .build/release/mosaic-bench data --peer-python python3)
            Steps: calibrate users for --events; `generate` on each rank count; `export` the 1-rank world to CSV;
            `ingest` all five CSV files on each rank count; then the peers on events.csv: `wc -l` (raw read
            throughput, a floor for any reader) and Cluster/bench/data_peer.py (Python csv.reader with the same
            per-row validation, no sort/route/write). Peak memory is getrusage ru_maxrss of each rank.
            """)

    @Option(help: "Target number of generated events.") var events = 10_000_000
    @Option(help: "Rank counts to compare, comma-separated.") var ranks = "1,2"
    @Option(help: "Work folder (deleted afterwards unless --keep).") var work = "out/bench-data"
    @Option(help: "Python for the csv peer (skipped when absent).") var peerPython: String?
    @Option(help: "Peer script.") var peerScript = "Cluster/bench/data_peer.py"
    @Flag(help: "Keep the generated files.") var keep = false

    struct Figures {
        var stage: String, ranks: Int, rows: Int, seconds: Double, memory: String
        /// Largest CPU time of one rank (user + system), nil for peers.
        var cpu: Double?
        var rate: Double { Double(rows) / max(seconds, 1e-9) }
    }

    func run() throws {
        let rankCounts = try benchRankCounts(ranks)
        let workURL = try freshDirectory(work)
        defer { if !keep { try? FileManager.default.removeItem(at: workURL) } }

        // Calibrate: mean events per user of the default world (power users included), on a sample.
        let sampleUsers = 3_000
        var p = WorldParameters()
        p.users = sampleUsers
        let sample = WorldGenerator(p).users(Array(0..<sampleUsers)).events.count
        let users = max(1, Int(Double(events) / (Double(sample) / Double(sampleUsers))))
        let pins = max(20_000, users)
        log(
            "bench data: target \(events) events → \(users) users (\(Double(sample) / Double(sampleUsers)) events/user), \(pins) pins + 1000/day"
        )

        var rows: [Figures] = []
        for n in rankCounts {
            let out = workURL.appendingPathComponent("world-\(n)").path
            let r = try mpirun(
                n, ["generate", "--users", "\(users)", "--pins", "\(pins)", "--out", out, "--run-id", "w"])
            let f = try parse(r, prefix: "GENERATE")
            rows.append(
                Figures(
                    stage: "generate (all entities; events counted)", ranks: n, rows: Int(f["events"]!)!,
                    seconds: Double(f["event_seconds"]!)!, memory: f["maxrss_mib"]!, cpu: Double(f["cpu_seconds"]!)!))
            log("generate on \(n) rank(s): \(f["events"]!) events in \(f["event_seconds"]!)s")
        }
        let csv = workURL.appendingPathComponent("csv").path
        _ = try mpirun(
            rankCounts.max()!,
            ["export", "--data", workURL.appendingPathComponent("world-\(rankCounts[0])").path, "--out", csv])
        for n in rankCounts where n != rankCounts[0] {
            try? FileManager.default.removeItem(atPath: workURL.appendingPathComponent("world-\(n)").path)
        }
        let eventsCSV = (csv as NSString).appendingPathComponent("events.csv")
        let bytes = ((try? FileManager.default.attributesOfItem(atPath: eventsCSV))?[.size] as? NSNumber)?.intValue ?? 0
        log("exported CSV: events.csv \(bytes >> 20) MiB")
        var ingestRows = 0
        for n in rankCounts {
            var args = ["ingest", "--out", workURL.appendingPathComponent("in-\(n)").path, "--run-id", "i"]
            for e in EntitySchema.entityNames {
                args += ["--\(e)", (csv as NSString).appendingPathComponent("\(e).csv")]
            }
            let r = try mpirun(n, args)
            let f = try parse(r, prefix: "INGEST")
            ingestRows = Int(f["rows"]!)!
            rows.append(
                Figures(
                    stage: "ingest (5 CSV files → HDF5)", ranks: n, rows: ingestRows, seconds: Double(f["seconds"]!)!,
                    memory: f["maxrss_mib"]!, cpu: Double(f["cpu_seconds"]!)!))
            log("ingest on \(n) rank(s): \(f["rows"]!) rows in \(f["seconds"]!)s")
            try? FileManager.default.removeItem(atPath: workURL.appendingPathComponent("in-\(n)").path)
        }
        // Peers on events.csv.
        let eventRows = Int(
            try parse(
                try mpirun(1, ["digest", "--data", workURL.appendingPathComponent("world-\(rankCounts[0])").path]),
                prefix: "DIGEST events")["rows"]!)!
        let t0 = now()
        let wc = try run("/usr/bin/env", ["wc", "-l", eventsCSV])
        let wcSeconds = now() - t0
        guard wc.status == 0 else { throw ValidationError("wc -l failed: \(wc.output)") }
        rows.append(
            Figures(
                stage: "peer: wc -l events.csv (raw read)", ranks: 1, rows: eventRows, seconds: wcSeconds, memory: "-",
                cpu: nil))
        var pythonRate: Double? = nil
        if let python = peerPython, FileManager.default.fileExists(atPath: peerScript) {
            let r = try run(python, [peerScript, eventsCSV])
            let f = try parse(r, prefix: "PEER")
            rows.append(
                Figures(
                    stage: "peer: Python csv.reader + validation (events.csv)", ranks: 1, rows: Int(f["rows"]!)!,
                    seconds: Double(f["seconds"]!)!, memory: "-", cpu: f["cpu_seconds"].flatMap(Double.init)))
            pythonRate = rows.last!.rate
        } else {
            log("python peer skipped (pass --peer-python and run from the package root)")
        }

        print(
            "\n`mosaic-bench data` — \(events) target events, ranks \(ranks), events.csv \(bytes >> 20) MiB; rows/s per rank = total / ranks"
        )
        print(
            "| stage | ranks | rows | seconds | rows/s | rows/s per rank | rows per CPU-s of the busiest rank | peak RSS per rank (MiB) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for f in rows {
            let perCPU = f.cpu.map { String(format: "%.0f", Double(f.rows) / Double(f.ranks) / $0) } ?? "-"
            print(
                String(
                    format: "| %@ | %d | %d | %.2f | %.0f | %.0f | %@ | %@ |", f.stage, f.ranks, f.rows, f.seconds,
                    f.rate, f.rate / Double(f.ranks), perCPU, f.memory))
        }
        print(
            "(rows per CPU-s = rows / ranks / CPU seconds of the busiest rank: less distorted by other load on a shared machine, but Open MPI busy-polls while a rank waits in a collective, which counts as CPU; load average at the end: \(loadAverage()))"
        )
        let gen = rows.filter { $0.stage.hasPrefix("generate") }, ing = rows.filter { $0.stage.hasPrefix("ingest") }
        if gen.count > 1 {
            print(
                String(
                    format: "\ngenerate speed-up %d → %d ranks: %.2f×", gen[0].ranks, gen.last!.ranks,
                    gen.last!.rate / gen[0].rate))
        }
        if ing.count > 1 {
            print(
                String(
                    format: "ingest speed-up %d → %d ranks: %.2f×", ing[0].ranks, ing.last!.ranks,
                    ing.last!.rate / ing[0].rate))
        }
        if let pythonRate, let first = ing.first {
            print(
                String(
                    format: "ingest (%d rank, full pipeline) / Python csv peer (parse+validate only), rows/s: %.2f×",
                    first.ranks, first.rate / pythonRate))
            if let py = rows.first(where: { $0.stage.hasPrefix("peer: Python") }), let pc = py.cpu, let ic = first.cpu {
                print(
                    String(
                        format: "same, per CPU second: %.2f×",
                        (Double(first.rows) / Double(first.ranks) / ic) / (Double(py.rows) / pc)))
            }
        }
        if let first = ing.first {
            print(
                String(
                    format: "ingest (%d rank) / wc -l rows/s: %.3f× (wc -l only counts newlines)", first.ranks,
                    first.rate / rows.first { $0.stage.hasPrefix("peer: wc") }!.rate))
        }
    }

    func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(
            separator: " ") ?? "?"
    }

    func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

    func parse(_ r: ChildProcess.Result, prefix: String) throws -> [String: String] {
        try benchParse(r, prefix: prefix)
    }

    func mpirun(_ n: Int, _ args: [String]) throws -> ChildProcess.Result { try benchRun(n, args) }

    func run(_ exe: String, _ args: [String]) throws -> ChildProcess.Result { try ChildProcess.run(exe, args) }
}

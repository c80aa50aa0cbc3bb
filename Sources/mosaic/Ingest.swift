import ArgumentParser
import Collective
import EventData
import Events
import Foundation
import ProcessKit

/// `mosaic ingest`: imports CSV/TSV files into a sharded dataset run on every rank.
struct Ingest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Import CSV/TSV files (with a header) into a sharded HDF5 dataset run, validating every row.",
        discussion: """
            Columns are documented in the README, section Data. Every rank reads its byte range of each file.
            Rejected rows go to the rejects file (file, row, field, reason, detail); the job fails (and
            publishes nothing) only when rejected rows exceed --max-reject-rate of all data rows. Duplicate
            ids are dropped (the first row in the file is kept) and counted. Events end up sharded by user
            and in time order within a user; pins and saves sharded by pin.
            Example: Cluster/mpirun-local.sh -np 2 .build/release/mosaic ingest --events ev.csv --pins pins.csv --out out/imported
            """)

    @Option(help: "Events file (event_id,user_id,pin_id,event_type,timestamp_ms,position,surface,session_id[,p_*]).")
    var events: String?
    @Option(help: "Pins file (pin_id,category,created_at_ms,creator_id,embedding[,tags]).") var pins: String?
    @Option(help: "Boards file (board_id,owner_id,categories).") var boards: String?
    @Option(help: "Saves file (pin_id,board_id,user_id,saved_at_ms).") var saves: String?
    @Option(help: "Users file (user_id,country,device,signup_at_ms).") var users: String?
    @Option(help: "Root folder of dataset runs.") var out = "out/imported"
    @Option(help: "Run id (default: import-<Unix time of the start>).") var runID: String?
    @Option(help: "Largest accepted fraction of rejected rows (0…1; duplicates excluded).") var maxRejectRate = 0.01
    @Option(help: "Rejects file (TSV); default <out>/rejects-<run-id>.tsv.") var rejects: String?
    @Option(help: "Field delimiter: comma or tab (default: tab for .tsv/.tab/.txt, else comma).") var delimiter: String?
    @Option(help: "Pin embedding width (default: counted in the first data row).") var dimension: Int?
    @Option(
        help:
            "A serving shard's rotated event log (<wal-dir>/rotated; repeat for several shards): its events-*.csv are ingested with --events, then moved to <wal-dir>/ingested once the run is published."
    )
    var servingEvents: [String] = []

    func validate() throws {
        guard [events, pins, boards, saves, users].contains(where: { $0 != nil }) || !servingEvents.isEmpty else {
            throw ValidationError("give at least one of --events, --pins, --boards, --saves, --users, --serving-events")
        }
        guard (0...1).contains(maxRejectRate) else { throw ValidationError("--max-reject-rate must be in 0…1") }
        if let delimiter, !["comma", "tab", ",", "\\t"].contains(delimiter) {
            throw ValidationError("--delimiter must be comma or tab")
        }
    }

    func run() throws {
        var files: [String: String] = [:]
        files["events"] = events; files["pins"] = pins; files["boards"] = boards; files["saves"] = saves;
        files["users"] = users
        let delim: UInt8? = delimiter.map { $0 == "tab" || $0 == "\\t" ? 9 : 44 }
        let id = runID ?? "import-\(Int(Date().timeIntervalSince1970))"
        let rejectsPath = rejects ?? URL(fileURLWithPath: out).appendingPathComponent("rejects-\(id).tsv").path
        let (servingFolders, out) = (servingEvents.map { URL(fileURLWithPath: $0) }, out)
        Communicator.runJob { comm in
            let t0 = now()
            let cpu0 = ProcessStats.cpuSeconds()
            let runID = try comm.broadcast(string: id)
            var files = files
            // The serving shards' rotated events, merged with --events into one file by rank 0.
            var rotated: [URL] = []
            if !servingFolders.isEmpty {
                var merged = ""
                if comm.isRoot {
                    rotated = try servingFolders.flatMap { try ServingEvents.files(in: $0) }
                    let inputs = (files["events"].map { [URL(fileURLWithPath: $0)] } ?? []) + rotated
                    if !rotated.isEmpty {
                        let url = URL(fileURLWithPath: out).appendingPathComponent("serving-events-\(runID).csv")
                        try FileManager.default.createDirectory(
                            at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                        try ServingEvents.merge(inputs, into: url)
                        merged = url.path
                    }
                    comm.log("ingest: \(rotated.count) new rotated serving event file(s)")
                }
                merged = try comm.broadcast(string: merged)
                if !merged.isEmpty { files["events"] = merged }
                guard !files.isEmpty else { return comm.log("ingest: nothing new to ingest; nothing published") }
            }
            comm.log(
                "ingest: \(files.keys.sorted().joined(separator: ", ")) on \(comm.size) rank(s) → \(out)/runs/\(runID)")
            // Start the run first, so that an already published run id fails before any work.
            let writer = try DatasetWriter(
                root: URL(fileURLWithPath: out), runID: runID, producer: "mosaic ingest",
                config: files.mapValues { $0 }, comm: comm)
            let ingestor = Ingestor(files: files, delimiter: delim, dimension: dimension, maxRejectRate: maxRejectRate)
            var parsedSoFar = 0
            var lastLog = now()
            let result = try ingestor.run(
                comm: comm,
                progress: { entity, accepted, parsed in
                    parsedSoFar += parsed
                    let t = now() - t0
                    comm.log(
                        String(
                            format:
                                "ingest: %@ done on rank 0: %d rows parsed, %d kept here; %.0f rows/s on rank 0, elapsed %.1fs",
                            entity, parsed, accepted, Double(parsedSoFar) / max(t, 1e-9), t))
                },
                parsing: { file, done, total, rows in
                    let t = now()
                    guard t - lastLog >= 2, total > 0 else { return }
                    lastLog = t
                    let fraction = Double(done) / Double(total)
                    let elapsed = t - t0
                    comm.log(
                        String(
                            format:
                                "ingest: %@ %.1f%% of rank 0's range, %d rows, %.0f rows/s on rank 0 (all files), ETA %.0fs",
                            (file as NSString).lastPathComponent, 100 * fraction, rows,
                            Double(parsedSoFar + rows) / elapsed,
                            fraction > 0 ? (t - t0) * (1 - fraction) / fraction : 0))
                })
            let validateSeconds = try comm.allreduce(now() - t0, op: .max)
            let s = result.summary
            if comm.isRoot {
                try FileManager.default.createDirectory(
                    at: URL(fileURLWithPath: rejectsPath).deletingLastPathComponent(), withIntermediateDirectories: true
                )
                try Ingestor.writeRejects(result.rejects, to: rejectsPath)
            }
            let reasons = s.byReason.keys.sorted().map { "\($0)=\(s.byReason[$0]!)" }.joined(separator: " ")
            comm.log(
                "ingest: \(s.dataRows) data rows, \(s.accepted) accepted, \(s.rejected) rejected, \(s.duplicates) duplicates dropped \(reasons.isEmpty ? "" : "(\(reasons))"); rejects → \(rejectsPath)"
            )
            let rate = s.dataRows > 0 ? Double(s.rejected) / Double(s.dataRows) : 0
            if rate > maxRejectRate {
                throw IngestError(
                    file: rejectsPath, row: 0, reason: "reject_rate_exceeded",
                    message: String(
                        format: "%.4f of rows rejected (%d of %d) > --max-reject-rate %.4f; nothing was published",
                        rate, s.rejected, s.dataRows, maxRejectRate))
            }
            for entity in EntitySchema.entityNames {
                guard let t = result.tables[entity] else { continue }
                _ = try writer.writer(t.schema, columns: t.presentColumns)
                try writer.append(t)
            }
            try writer.commit()
            if comm.isRoot, !rotated.isEmpty {
                try ServingEvents.markIngested(rotated)
                try? FileManager.default.removeItem(atPath: files["events"]!)
            }
            let seconds = try comm.allreduce(now() - t0, op: .max)
            let memory = try comm.peakMemoryPerRank()
            let cpu = try comm.maxCPUSeconds(since: cpu0)
            comm.log(
                String(
                    format: "ingest: done in %.2fs (%.0f rows/s overall, %.0f per rank; %.1f MB/s)", seconds,
                    Double(s.dataRows) / seconds, Double(s.dataRows) / seconds / Double(comm.size),
                    Double(s.bytes) / seconds / 1e6))
            if comm.isRoot {
                print(
                    String(
                        format:
                            "INGEST ranks=%d rows=%d accepted=%d rejected=%d duplicates=%d bytes=%d seconds=%.3f validate_seconds=%.3f rows_per_s=%.0f cpu_seconds=%.3f maxrss_mib=%@ %@",
                        comm.size, s.dataRows, s.accepted, s.rejected, s.duplicates, s.bytes, seconds, validateSeconds,
                        Double(s.dataRows) / seconds, cpu, memory, reasons))
            }
        }
    }
}

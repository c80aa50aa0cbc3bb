import ArgumentParser
import Collective
import EventData
import Events
import Foundation
import ProcessKit

/// `mosaic export`: writes a dataset run back to CSV/TSV files in the import format.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write every entity of a dataset run to <out>/<entity>.csv (or .tsv) in the import format.",
        discussion:
            "Every rank formats its shards and writes them at its offset of one shared file (rows in shard order).")

    @Option(help: "Root folder of dataset runs.") var data = "out/world"
    @Option(help: "Run id (default: the current run).") var runID: String?
    @Option(help: "Output folder.") var out = "out/csv"
    @Flag(help: "Write TSV (tab-separated, .tsv) instead of CSV.") var tsv = false

    func run() throws {
        Communicator.runJob { comm in
            let t0 = now()
            let reader = try DatasetReader(root: URL(fileURLWithPath: data), runID: runID)
            if comm.isRoot { try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true) }
            try comm.barrier()
            let delim: UInt8 = tsv ? 9 : 44
            var total = 0
            for entity in reader.entities.sorted() {
                var bytes: [UInt8] = []
                var header: [UInt8] = []
                var rows = 0
                for path in try reader.myShards(entity, comm: comm) {
                    let t = try DatasetReader.readShard(path, entity: entity)
                    header = CSVWriter.header(t, delimiter: delim)
                    CSVWriter.append(t, rows: 0..<t.count, delimiter: delim, to: &bytes)
                    rows += t.count
                }
                // The header comes from the first shard (read by rank 0).
                header = try comm.broadcastArray(header, root: 0)
                let sizes = try comm.allgather([Int64(bytes.count)])
                let offset = Int64(header.count) + sizes[0..<comm.rank].reduce(0, +)
                let path = URL(fileURLWithPath: out).appendingPathComponent("\(entity).\(tsv ? "tsv" : "csv")").path
                if comm.isRoot {
                    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                    guard fd >= 0 else {
                        throw IngestError(
                            file: path, row: 0, reason: "unwritable", message: String(cString: strerror(errno)))
                    }
                    _ = header.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                    close(fd)
                }
                try comm.barrier()
                let fd = open(path, O_WRONLY | O_CLOEXEC)
                guard fd >= 0 else {
                    throw IngestError(
                        file: path, row: 0, reason: "unwritable", message: String(cString: strerror(errno)))
                }
                var written = 0
                while written < bytes.count {
                    let n = bytes.withUnsafeBytes {
                        pwrite(fd, $0.baseAddress! + written, $0.count - written, off_t(offset) + off_t(written))
                    }
                    if n <= 0 {
                        close(fd);
                        throw IngestError(
                            file: path, row: 0, reason: "unwritable", message: String(cString: strerror(errno)))
                    }
                    written += n
                }
                close(fd)
                try comm.barrier()
                total += try comm.allreduce(rows)
                comm.log("export: \(entity) → \(path)")
            }
            let seconds = try comm.allreduce(now() - t0, op: .max)
            comm.log(String(format: "export: %d rows in %.2fs", total, seconds))
            if comm.isRoot { print("EXPORT rows=\(total) seconds=\(String(format: "%.3f", seconds))") }
        }
    }
}

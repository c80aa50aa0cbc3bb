import EventData
import Foundation

/// The events a serving shard logged (`mosaic-serve --wal-dir W` rotates them into
/// `W/rotated/events-<first seq>-<last seq>.csv`, in the `mosaic ingest` events format), as the
/// next night's ingest reads them (`mosaic ingest --serving-events W/rotated`): every rotated
/// file is merged into one events file, and once the run is published the files move to
/// `W/ingested/` (with their `.keys`), so the night after does not ingest them again.
public enum ServingEvents {
    /// The rotated events files in `folder` (not the temporary files of a rotation in progress),
    /// by name (the first sequence number, zero-padded).
    public static func files(in folder: URL) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasPrefix("events-") && $0.hasSuffix(".csv") }
            .sorted()
            .map { folder.appendingPathComponent($0) }
    }

    /// Writes `inputs` (events CSV files with the same header) one after another into `out`,
    /// the header once. Throws naming the file whose header differs from the first one's.
    public static func merge(_ inputs: [URL], into out: URL) throws {
        FileManager.default.createFile(atPath: out.path, contents: nil)
        let handle = try FileHandle(forWritingTo: out)
        defer { try? handle.close() }
        var header: Substring? = nil
        for url in inputs {
            let text = try String(contentsOf: url, encoding: .utf8)
            let end = text.firstIndex(of: "\n") ?? text.endIndex
            let head = text[..<end]
            if let header {
                guard head == header else {
                    throw IngestError(
                        file: url.path, row: 1, reason: "header_mismatch",
                        message: "header '\(head.prefix(120))' differs from '\(header.prefix(120))' of the first file")
                }
            } else {
                header = head
                handle.write(Data(head.utf8))
                handle.write(Data("\n".utf8))
            }
            var body = end < text.endIndex ? text[text.index(after: end)...] : ""
            if !body.isEmpty && !body.hasSuffix("\n") { body += "\n" }
            handle.write(Data(body.utf8))
        }
    }

    /// Moves the ingested rotated `files` (and their `.keys` beside them) from `W/rotated/` to
    /// `W/ingested/` (created when missing).
    public static func markIngested(_ files: [URL]) throws {
        let fm = FileManager.default
        for url in files {
            let folder = url.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("ingested")
            try fm.createDirectory(at: folder, withIntermediateDirectories: true)
            let keys = url.deletingPathExtension().appendingPathExtension("keys")
            for f in [keys, url] where fm.fileExists(atPath: f.path) {
                let target = folder.appendingPathComponent(f.lastPathComponent)
                if fm.fileExists(atPath: target.path) { try fm.removeItem(at: target) }
                try fm.moveItem(at: f, to: target)
            }
        }
    }
}

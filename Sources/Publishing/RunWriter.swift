import Artifacts
import Collective
import Foundation

/// Writes a run — the artifacts of one pipeline execution — so that readers never see half of it.
///
/// Layout under `root`:
/// ```
/// root/
///   .staging/<runID>/           while the run is written (every rank writes here)
///   runs/<runID>/               after commit: MANIFEST.json + artifact files
///   current -> runs/<runID>     symlink, swapped atomically on publish
/// ```
/// Every rank writes its own shard files (`shardPath`), records them (`record`), and all ranks
/// call `commit`: rank 0 then writes `MANIFEST.json` last, moves the directory into `runs/` and
/// swaps `current` with an atomic rename.
public final class RunWriter {
    /// Root folder holding all runs.
    public let root: URL
    /// This run's id.
    public let runID: String
    /// Folder the ranks write into until commit.
    public let stagingDirectory: URL
    let comm: Communicator
    let producer: String
    let config: [String: String]
    private var files: [(artifact: String, file: Manifest.File)] = []

    /// Starts a run (collective: every rank calls it). Rank 0 creates the staging folder.
    ///
    /// - Throws: when `runs/<runID>` already exists, so a published run is never overwritten.
    public init(root: URL, runID: String, producer: String, config: [String: String] = [:], comm: Communicator) throws {
        self.root = root
        self.runID = runID
        self.comm = comm
        self.producer = producer
        self.config = config
        stagingDirectory = root.appendingPathComponent(".staging").appendingPathComponent(runID)
        var failure = ""
        if comm.isRoot {
            let fm = FileManager.default
            let final = root.appendingPathComponent("runs").appendingPathComponent(runID)
            if fm.fileExists(atPath: final.path) {
                failure = "run \(runID) is already published at \(final.path); choose another --run-id"
            } else {
                do {
                    if fm.fileExists(atPath: stagingDirectory.path) { try fm.removeItem(at: stagingDirectory) }
                    try fm.createDirectory(at: stagingDirectory, withIntermediateDirectories: true)
                } catch {
                    failure = "cannot create \(stagingDirectory.path): \(error.localizedDescription)"
                }
            }
        }
        let message = try comm.broadcast(string: failure)
        if !message.isEmpty { throw ArtifactError(file: root.path, message: message) }
    }

    /// The path for this rank's shard of `artifact`: `artifact/part-RRRRR-of-SSSSS.h5`, creating
    /// the artifact's folder.
    public func shardPath(artifact: String, rank: Int? = nil) throws -> String {
        let r = rank ?? comm.rank
        let dir = stagingDirectory.appendingPathComponent(artifact)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(String(format: "part-%05d-of-%05d.h5", r, comm.size)).path
    }

    /// The path of a single-file artifact (written by one rank), e.g. `model/ranker.h5`.
    public func filePath(artifact: String, name: String) throws -> String {
        let dir = stagingDirectory.appendingPathComponent(artifact)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    /// Records a file this rank wrote (its path from `shardPath` or `filePath`) with its rows.
    public func record(artifact: String, path: String, rows: Int) throws {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        let bytes = (attributes[.size] as? NSNumber)?.int64Value ?? 0
        let relative = String(path.dropFirst(stagingDirectory.path.count + 1))
        files.append((artifact, Manifest.File(path: relative, bytes: bytes, rows: Int64(rows), rank: comm.rank)))
    }

    /// Collective: gathers every rank's files, writes the manifest on rank 0, then publishes the
    /// run atomically. Returns the manifest (on every rank).
    @discardableResult
    public func commit() throws -> Manifest {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let mine = try encoder.encode(files.map { LocalFile(artifact: $0.artifact, file: $0.file) })
        let (bytes, counts) = try comm.gatherv(Array(mine), root: 0)  // counts are empty off the root
        var all: [LocalFile] = []
        var offset = 0
        for c in counts {
            all += try JSONDecoder().decode([LocalFile].self, from: Data(bytes[offset..<offset + c]))
            offset += c
        }
        try comm.barrier()  // every rank has closed its files
        // Rank 0 alone builds, writes and publishes the manifest, then sends that exact document
        // to every rank, so all ranks return what readers will see (one clock, one timestamp).
        var failure = ""
        var published = Data()
        if comm.isRoot {
            var byName: [String: [Manifest.File]] = [:]
            for f in all { byName[f.artifact, default: []].append(f.file) }
            let manifest = Manifest(
                schemaVersion: Manifest.currentSchemaVersion, runID: runID, producer: producer, ranks: comm.size,
                createdAt: ISO8601DateFormatter().string(from: Date()), config: config,
                artifacts: byName.keys.sorted().map { name in
                    Manifest.Artifact(
                        name: name, files: byName[name]!.sorted { ($0.rank, $0.path) < ($1.rank, $1.path) })
                })
            do {
                try publish(manifest)
                published = try encoder.encode(manifest)
            } catch { failure = "\(error)" }
        }
        let message = try comm.broadcast(string: failure)
        if !message.isEmpty { throw ArtifactError(file: root.path, message: message) }
        let document = try comm.broadcastArray(Array(published))
        return try JSONDecoder().decode(Manifest.self, from: Data(document))
    }

    private struct LocalFile: Codable {
        var artifact: String
        var file: Manifest.File
    }

    private func publish(_ manifest: Manifest) throws {
        let fm = FileManager.default
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // The manifest is written last, itself through a rename, so its presence means complete.
        let tmp = stagingDirectory.appendingPathComponent(".MANIFEST.json.tmp")
        try encoder.encode(manifest).write(to: tmp)
        try fm.moveItem(at: tmp, to: stagingDirectory.appendingPathComponent(PublishedRun.manifestName))
        let runs = root.appendingPathComponent("runs")
        try fm.createDirectory(at: runs, withIntermediateDirectories: true)
        let final = runs.appendingPathComponent(runID)
        try fm.moveItem(at: stagingDirectory, to: final)
        // Atomic swap of `current`: make a new link beside it and rename over the old one.
        let link = root.appendingPathComponent(PublishedRun.currentLink)
        let newLink = root.appendingPathComponent(".current.\(runID).tmp")
        try? fm.removeItem(at: newLink)
        try fm.createSymbolicLink(atPath: newLink.path, withDestinationPath: "runs/\(runID)")
        guard rename(newLink.path, link.path) == 0 else {
            throw ArtifactError(
                file: link.path, message: "cannot swap the current link: \(String(cString: strerror(errno)))")
        }
    }
}

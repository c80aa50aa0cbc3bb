import Artifacts
import Foundation

/// A published dataset run, read back shard by shard.
public struct DatasetReader: Sendable {
    public let run: PublishedRun

    /// Opens the run `root/current` (or `root/runs/<runID>`).
    public init(root: URL, runID: String? = nil) throws {
        run = try PublishedRun.open(root: root, runID: runID)
    }

    /// Entities present in the run.
    public var entities: [String] {
        run.manifest.artifacts.map(\.name).filter { EntitySchema.entityNames.contains($0) }
    }

    /// Shard file paths of `entity`, in writer-rank order.
    public func shards(_ entity: String) throws -> [String] { try run.paths(of: entity) }

    /// Reads the whole shard at `path`.
    public static func readShard(_ path: String, entity: String) throws -> Table {
        let file = try H5File(path: path, mode: .read)
        let v = try file.root.intAttribute("schema_version")
        guard v == EntitySchema.version else {
            throw ArtifactError(
                file: path, object: "/", message: "schema_version \(v), this build reads \(EntitySchema.version)")
        }
        return try Table.read(file: file, entity: entity)
    }
}

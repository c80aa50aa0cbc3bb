import Foundation

/// The manifest of a run: what every artifact file is, written last (as `MANIFEST.json`), so a
/// run without one is incomplete.
public struct Manifest: Codable, Equatable, Sendable {
    /// One file of an artifact (one rank's shard, or the whole artifact).
    public struct File: Codable, Equatable, Sendable {
        /// Path relative to the run directory, e.g. `embeddings/part-00001-of-00004.h5`.
        public var path: String
        /// Size in bytes when the run was committed.
        public var bytes: Int64
        /// Rows (items) the file holds, as its writer counted them.
        public var rows: Int64
        /// The rank that wrote it.
        public var rank: Int
        /// `FileChecksum` of its bytes (hex), where the writer recorded one (published nights).
        public var checksum: String?
        public init(path: String, bytes: Int64, rows: Int64, rank: Int, checksum: String? = nil) {
            self.path = path
            self.bytes = bytes
            self.rows = rows
            self.rank = rank
            self.checksum = checksum
        }
    }

    /// One artifact: a name (`embeddings`, `index`, `ranker`) and its files in rank order.
    public struct Artifact: Codable, Equatable, Sendable {
        public var name: String
        public var files: [File]
        /// Total rows over the files.
        public var rows: Int64 { files.reduce(0) { $0 + $1.rows } }

        public init(name: String, files: [File]) {
            self.name = name
            self.files = files
        }
    }

    /// Version of this manifest layout.
    public var schemaVersion: Int
    /// The run's id (its directory name).
    public var runID: String
    /// The job that produced it (e.g. `mosaic pipeline`).
    public var producer: String
    /// Number of ranks that wrote it.
    public var ranks: Int
    /// ISO 8601 time of the commit (metadata only; never a seed).
    public var createdAt: String
    /// The configuration that made the run (option name → value).
    public var config: [String: String]
    /// Artifacts by name, sorted.
    public var artifacts: [Artifact]

    public init(
        schemaVersion: Int = Manifest.currentSchemaVersion, runID: String, producer: String, ranks: Int,
        createdAt: String, config: [String: String], artifacts: [Artifact]
    ) {
        self.schemaVersion = schemaVersion
        self.runID = runID
        self.producer = producer
        self.ranks = ranks
        self.createdAt = createdAt
        self.config = config
        self.artifacts = artifacts
    }

    /// The artifact called `name`, if present.
    public func artifact(_ name: String) -> Artifact? { artifacts.first { $0.name == name } }

    /// The manifest layout this build writes and reads.
    public static let currentSchemaVersion = 1
}

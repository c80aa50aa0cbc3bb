import Artifacts
import Collective
import Foundation
import Publishing

/// The `embeddings` artifact of a run: every pin's vector, sharded by the rank that embedded it.
///
/// Layout of each shard file `embeddings/part-RRRRR-of-SSSSS.h5`: attributes `shard_rank`,
/// `shard_count`; group `/embeddings` with `pin_ids` (n) int64, `vectors` (n, d) float32 and
/// the attribute `model_version` (the PinSage model that produced them).
public struct PinEmbeddings: Sendable {
    /// Pin ids (n).
    public var ids: [Int64]
    /// Vectors, `ids.count × d` row-major.
    public var vectors: [Float]
    /// Vector width.
    public var d: Int
    /// The producing model's version.
    public var modelVersion: String

    public init(ids: [Int64], vectors: [Float], d: Int, modelVersion: String) {
        precondition(vectors.count == ids.count * d, "vectors must be ids.count × d")
        self.ids = ids
        self.vectors = vectors
        self.d = d
        self.modelVersion = modelVersion
    }

    /// Writes this rank's shard into `run` and records it (every rank calls it; commit after).
    public func write(to run: RunWriter, rank: Int, ranks: Int) throws {
        let path = try run.shardPath(artifact: "embeddings")
        do {
            let f = try H5File(path: path, mode: .create)
            try f.root.setAttribute("shard_rank", Int64(rank))
            try f.root.setAttribute("shard_count", Int64(ranks))
            let g = try f.root.createGroup("embeddings")
            try g.write("pin_ids", ids, shape: [ids.count])
            try g.write("vectors", vectors, shape: [ids.count, d])
            try g.setAttribute("model_version", modelVersion)
            try f.flush()
        }
        try run.record(artifact: "embeddings", path: path, rows: ids.count)
    }

    /// Every row of the published embeddings run at `root` (for evaluation on one process).
    public static func readAll(root: URL, runID: String? = nil) throws -> PinEmbeddings {
        try readRows(0..<Int.max, of: PublishedRun.open(root: root, runID: runID)).slice
    }

    /// Collective: this rank's contiguous slice of the rows of the embeddings run at `root`
    /// (rank r of s reads rows ⌊r·n/s⌋ ..< ⌊(r+1)·n/s⌋, whatever rank count wrote them).
    public static func readMine(root: URL, runID: String? = nil, comm: Communicator) throws -> PinEmbeddings {
        let run = try PublishedRun.open(root: root, runID: runID)
        let n = Int(run.manifest.artifact("embeddings")?.rows ?? 0)
        let lo = comm.rank * n / comm.size, hi = (comm.rank + 1) * n / comm.size
        return try readRows(lo..<hi, of: run).slice
    }
}

extension PinEmbeddings {
    /// Rows `range` of the embeddings run `run`, its shards read in manifest order as one
    /// table: only the shard files that overlap `range` are opened, and only their rows in it
    /// (a rank's memory is its slice). Returns the slice and the run's total rows.
    ///
    /// - Throws: `ArtifactError` naming the shard whose width or model version differs from
    ///   the first shard's, or whose row count differs from the manifest's.
    public static func readRows(_ range: Range<Int>, of run: PublishedRun) throws -> (
        slice: PinEmbeddings, total: Int
    ) {
        guard let artifact = run.manifest.artifact("embeddings") else {
            throw ArtifactError(
                file: run.directory.appendingPathComponent(PublishedRun.manifestName).path,
                message:
                    "no 'embeddings' artifact (has: \(run.manifest.artifacts.map(\.name).joined(separator: ", "))); pass the root of a `mosaic pinsage embed` run"
            )
        }
        let total = Int(artifact.rows)
        var out = PinEmbeddings(ids: [], vectors: [], d: 0, modelVersion: "")
        var first = 0
        var reference: (d: Int, version: String)? = nil
        for file in artifact.files {
            let path = run.directory.appendingPathComponent(file.path).path
            let rows = Int(file.rows)
            defer { first += rows }
            let f = try H5File(path: path, mode: .read)
            let g = try f.root.group("embeddings")
            let set = try g.dataset("vectors", of: Float.self, shape: [nil, nil])
            let version = try g.stringAttribute("model_version")
            guard set.shape[0] == rows else {
                throw ArtifactError(
                    file: path, object: "/embeddings/vectors",
                    message: "\(set.shape[0]) rows, the manifest says \(rows)")
            }
            if let reference, reference.d != set.shape[1] || reference.version != version {
                throw ArtifactError(
                    file: path,
                    message:
                        "width \(set.shape[1]), model \(version); the run's first shard has width \(reference.d), model \(reference.version)"
                )
            }
            reference = (set.shape[1], version)
            out.d = set.shape[1]
            out.modelVersion = version
            let lo = max(range.lowerBound, first), hi = min(range.upperBound, first + rows)
            guard lo < hi else { continue }
            out.vectors += try set.readRows((lo - first)..<(hi - first), as: Float.self)
            out.ids += try g.dataset("pin_ids", of: Int64.self, shape: [rows]).readRows(
                (lo - first)..<(hi - first), as: Int64.self)
        }
        return (out, total)
    }
}

import Artifacts
import ArgumentParser
import Collective
import Foundation
import Index
import Linalg
import Models

/// `mosaic index …`: build, search and update IVF indexes (issue 5).
struct IndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "IVF-Flat / IVF-PQ approximate nearest-neighbour index: build, search, add, remove.",
        discussion: """
            Every subcommand runs under mpirun: ranks share the work and the index is sharded by \
            contiguous ranges of list ids. Example:
              Cluster/mpirun-local.sh -np 2 .build/release/mosaic index build --input pins.h5 --output pins.ivf.h5
            """,
        subcommands: [IndexBuild.self, IndexSearch.self, IndexAdd.self, IndexRemove.self])
}

/// Input vectors: an HDF5 dataset (n, d) float32 with optional ids (n) int64, or the pin
/// embeddings of a `mosaic pinsage embed` run (its shards read in order as one table).
struct VectorInput: ParsableArguments {
    @Option(help: "HDF5 file holding the vectors (or use --embeddings).") var input: String?
    @Option(help: "Dataset of the vectors in --input: float32, shape (n, d).") var dataset = "vectors"
    @Option(help: "Dataset of the ids in --input: int64, shape (n); when absent, ids are the row numbers.")
    var idsDataset = "ids"
    @Option(help: "Root of a PinSage embeddings run (`mosaic pinsage embed`); ids are pin ids.")
    var embeddings: String?

    func validate() throws {
        guard (input == nil) != (embeddings == nil) else {
            throw ValidationError("pass exactly one of --input FILE and --embeddings RUN")
        }
    }

    /// What was read, for logs and the run's config.
    var description: String { input ?? "embeddings run \(embeddings!)" }

    /// This rank's contiguous slice of rows (rank r of s reads rows ⌊r·n/s⌋ ..< ⌊(r+1)·n/s⌋),
    /// its ids, d, the global row count, and the embedding model's version (nil for --input).
    func readSlice(comm: Communicator) throws -> (
        x: [Float], ids: [Int64], d: Int, total: Int, first: Int, modelVersion: String?
    ) {
        if let embeddings {
            let run = try PublishedRun.open(root: URL(fileURLWithPath: embeddings))
            let n = Int(run.manifest.artifact("embeddings")?.rows ?? 0)
            let lo = comm.rank * n / comm.size, hi = (comm.rank + 1) * n / comm.size
            let (slice, total) = try PinEmbeddings.readRows(lo..<hi, of: run)
            // Every rank needs d and the version, also a rank whose slice is empty.
            let d = Int(try comm.allreduce(Int64(slice.d), op: .max))
            guard d > 0 else {
                throw ArtifactError(file: run.directory.path, message: "the embeddings run holds no vectors")
            }
            for (i, v) in slice.vectors.enumerated() where !v.isFinite {
                throw ArtifactError(
                    file: run.directory.path, object: "/embeddings/vectors",
                    message: "pin \(slice.ids[i / d]), column \(i % d): expected a finite value, found \(v)")
            }
            let version = try comm.broadcast(string: slice.modelVersion)
            return (slice.vectors, slice.ids, d, total, lo, version)
        }
        let path = input!
        let file = try H5File(path: path, mode: .read)
        let ds = try file.root.dataset(dataset, of: Float.self, shape: [nil, nil])
        let n = ds.shape[0], d = ds.shape[1]
        guard d > 0 else {
            throw ArtifactError(
                file: path, object: ds.path, message: "expected vectors of dimension ≥ 1, found (\(n), 0)")
        }
        let lo = comm.rank * n / comm.size, hi = (comm.rank + 1) * n / comm.size
        let x = try ds.readRows(lo..<hi, as: Float.self)
        for (i, v) in x.enumerated() where !v.isFinite {
            throw ArtifactError(
                file: path, object: ds.path,
                message: "row \(lo + i / d), column \(i % d): expected a finite value, found \(v)")
        }
        var ids = (lo..<hi).map(Int64.init)
        if file.root.contains(idsDataset) {
            ids = try file.root.dataset(idsDataset, of: Int64.self, shape: [n]).readRows(lo..<hi, as: Int64.self)
        }
        return (x, ids, d, n, lo, nil)
    }
}

/// Adds this rank's rows `x` in local batches (collective: every rank makes the same number
/// of calls), with progress, then sorts every list by id: the canonical order makes the index
/// file the same whatever the rank count and batch size.
func addInBatches(
    _ index: inout IVFIndex, x: [Float], ids: [Int64], total: Int, batch: Int, comm: Communicator
) throws {
    let d = index.d
    let n = ids.count
    let rounds = Int(try comm.allreduce(Int64((n + batch - 1) / batch), op: .max))
    let t0 = Date()
    for r in 0..<rounds {
        let lo = Swift.min(n, r * batch), hi = Swift.min(n, lo + batch)
        try index.add(Array(x[(lo * d)..<(hi * d)]), ids: Array(ids[lo..<hi]), comm: comm)
        let done = Int(try comm.allreduce(Int64(hi)))
        let elapsed = Date().timeIntervalSince(t0)
        let eta = elapsed * Double(total - done) / Double(Swift.max(1, done))
        comm.log(
            String(
                format: "add: %d / %d vectors (%.0f%%), %.1fs, ETA %.1fs", done, total,
                100 * Double(done) / Double(Swift.max(1, total)), elapsed, eta))
    }
    index.sortListsById()
}

import Artifacts
import ArgumentParser
import Collective
import Foundation
import Index
import Linalg

struct IndexAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add fresh vectors to an existing index without retraining or rebuilding it.",
        discussion:
            "Each rank loads its shard, reads its slice of --input, vectors go to their list's shard, and the index is rewritten."
    )

    @Option(help: "Index file to update.") var index: String
    @OptionGroup var source: VectorInput
    @Option(help: "Where to write the updated index (default: replace --index).") var output: String?
    @Option(help: "Vectors added per collective round.") var addBatch = 262_144

    func run() throws {
        Communicator.runJob { comm in
            BLAS.setThreads(1)
            var ivf = try IVFIndex.load(from: index, comm: comm)
            let (x, ids, d, total, _, _) = try source.readSlice(comm: comm)
            guard d == ivf.d else {
                throw ArtifactError(
                    file: source.description,
                    object: source.input == nil ? "/embeddings/vectors" : "/\(source.dataset)",
                    message: "expected vectors of d=\(ivf.d) (the index's), found d=\(d)")
            }
            let before = Int(try comm.allreduce(Int64(ivf.count)))
            try addInBatches(
                &ivf, x: x, ids: ids, total: total, batch: Swift.max(1, addBatch), comm: comm)
            try ivf.save(to: output ?? index, comm: comm, producer: "mosaic index add")
            let after = Int(try comm.allreduce(Int64(ivf.count)))
            if comm.isRoot { print("INDEX ADDED added=\(after - before) ntotal=\(after)") }
        }
    }
}

struct IndexRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove ids from an index (id map lookup, no scan of the lists).")

    @Option(help: "Index file to update.") var index: String
    @Option(parsing: .upToNextOption, help: "Ids to remove.") var ids: [Int64]
    @Option(help: "Where to write the updated index (default: replace --index).") var output: String?

    func run() throws {
        Communicator.runJob { comm in
            var ivf = try IVFIndex.load(from: index, comm: comm)
            let removed = try ivf.remove(ids: ids, comm: comm)
            try ivf.save(to: output ?? index, comm: comm, producer: "mosaic index remove")
            let after = Int(try comm.allreduce(Int64(ivf.count)))
            if comm.isRoot { print("INDEX REMOVED removed=\(removed) ntotal=\(after)") }
        }
    }
}

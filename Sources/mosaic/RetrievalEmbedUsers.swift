import ArgumentParser
import Artifacts
import Collective
import Foundation
import Models
import ProcessKit
import Publishing

struct RetrievalEmbedUsers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed-users",
        abstract: "Every user's two-tower vector at the cut, published sharded by user.",
        discussion: """
            Each rank encodes its users' events strictly before the cut (default: every event) with the \
            tower of --model and writes its shard of the artifact `user_vectors` (docs/artifacts.md). The \
            model must have been trained on the same PinSage embeddings (their model version is checked). \
            Prints `USER-VECTORS users=… seconds=…`.
            """)

    @OptionGroup var inputs: RetrievalInputs
    @Option(help: "Root of the two-tower model run (`mosaic retrieval train`).") var model = "out/two-tower"
    @Option(help: "Root folder the user vectors are published under.") var out = "out/user-vectors"
    @Option(help: "Run id (default: the model's run id).") var runID: String?

    func run() throws {
        Communicator.runJob { comm in
            let t0 = now()
            let (users, profiles, vectors, embeddingVersion, cut, dataset) = try inputs.load(comm: comm)
            let (tower, version) = try TwoTowerModel<Float>.load(
                run: URL(fileURLWithPath: model), embeddingVersion: embeddingVersion, d: vectors.d)
            let embedded = try UserVectors.embed(
                users: users, profiles: profiles, vectors: vectors, model: tower, at: cut, modelVersion: version,
                embeddingVersion: embeddingVersion, batchUsers: inputs.batchUsers, comm: comm)
            let writer = try RunWriter(
                root: URL(fileURLWithPath: out), runID: runID ?? version, producer: "mosaic retrieval embed-users",
                config: [
                    "data": dataset, "model": model, "model_version": version,
                    "embedding_model_version": embeddingVersion, "at_ms": "\(cut)",
                ], comm: comm)
            try embedded.write(to: writer, rank: comm.rank, ranks: comm.size)
            try writer.commit()
            let total = try comm.allreduce(Int64(users.count))
            if comm.isRoot {
                print(String(format: "USER-VECTORS users=%lld at_ms=%lld seconds=%.2f", total, cut, now() - t0))
            }
        }
    }
}

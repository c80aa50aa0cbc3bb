import ArgumentParser
import Artifacts
import Collective
import EventData
import Events
import Foundation
import Models

/// `mosaic retrieval …`: the two-tower user model over the night's PinSage vectors.
struct RetrievalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrieval",
        abstract: "The two-tower retrieval model: train the user tower, embed every user.",
        discussion: """
            The user tower reads a user's recent engagements' PinSage vectors (time-decayed mean, the \
            last few, hides as a negative mean) and country, device and activity; the pin tower is \
            the frozen PinSage vector, so user vectors search the night's PinSage index \
            (`feed candidates --user-vectors`). Example:
              Cluster/mpirun-local.sh -np 2 .build/release/mosaic retrieval train --data out/world --embeddings out/embeddings
            """,
        subcommands: [RetrievalTrain.self, RetrievalEmbedUsers.self])
}

/// The inputs both retrieval jobs read: the dataset, the PinSage embeddings and the cut.
struct RetrievalInputs: ParsableArguments {
    @Option(help: "Root folder of the dataset runs (its `current` run is read).") var data = "out/world"
    @Option(help: "Root of the PinSage embeddings run (`mosaic pinsage embed`).") var embeddings = "out/embeddings"
    @Option(help: "Use only events strictly before this time (ms since the epoch); default: every event.")
    var beforeMs: Int64?
    @Option(help: "Use only events before the last D days (the evaluation hold-out of `feed candidates`).")
    var holdoutDays = 0
    @Option(help: "Users per rank per round of vector lookups (bounds one round's memory).") var batchUsers = 256

    func validate() throws {
        guard holdoutDays >= 0, batchUsers >= 1 else { throw ValidationError("--holdout-days ≥ 0, --batch-users ≥ 1") }
        guard beforeMs == nil || holdoutDays == 0 else {
            throw ValidationError("pass --before-ms or --holdout-days, not both")
        }
    }

    /// This rank's users, their profiles, its rows of the PinSage vectors with their model
    /// version, and the cut. Collective.
    func load(comm: Communicator) throws -> (
        users: [UserEvents], profiles: [Int64: UserProfile], vectors: PinVectorTable, version: String, cut: Int64,
        dataset: String
    ) {
        let reader = try DatasetReader(root: URL(fileURLWithPath: data))
        let users = try UserEvents.load(world: reader, comm: comm)
        let profiles = try UserProfile.load(world: reader, comm: comm)
        let pins = try PinEmbeddings.readMine(root: URL(fileURLWithPath: embeddings), comm: comm)
        let d = Int(try comm.allreduce(Int64(pins.d), op: .max))
        guard d > 0 else {
            throw ArtifactError(
                file: embeddings, message: "the embeddings run holds no vectors; run `mosaic pinsage embed`")
        }
        let version = try comm.broadcast(string: pins.modelVersion)
        let cut = try beforeMs ?? UserEvents.cut(holdoutDays: holdoutDays, users: users, comm: comm)
        return (
            users, profiles, PinVectorTable(ids: pins.ids, vectors: pins.vectors, d: d), version, cut,
            reader.run.manifest.runID
        )
    }
}

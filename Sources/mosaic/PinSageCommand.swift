import ArgumentParser
import Artifacts
import Collective
import Foundation
import Graph
import Learning
import Linalg
import Models
import ProcessKit
import Publishing

/// `mosaic pinsage …`: PinSage training and bulk embedding on the sharded graph.
struct PinSageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pinsage",
        abstract: "Train PinSage on importance neighbours and embed every pin layer by layer.",
        subcommands: [PinSageTrain.self, PinSageEmbed.self])
}

/// Options shared by train and embed: where the content and the neighbours come from.
struct PinSageInputs: ParsableArguments {
    @Option(help: "Root folder of the dataset run (its `pins` give the content features).") var data = "out/world"
    @Option(help: "Dataset run id (default: current).") var dataRun: String?
    @Option(help: "Root folder of the walks run (from `mosaic graph walks`).") var walks = "out/walks"
    @Option(help: "Walks run id (default: current).") var walksRun: String?
    @Flag(help: "Add a multi-hot of the pins' tags to the content features (Beauty attributes).") var tags = false

    func load(_ comm: Communicator, sequence: SequencePairs.Parameters? = nil) throws -> NodeStore {
        try NodeStore.load(
            data: URL(fileURLWithPath: data), dataRun: dataRun, walks: URL(fileURLWithPath: walks), walksRun: walksRun,
            tags: tags, sequence: sequence, comm: comm)
    }
}

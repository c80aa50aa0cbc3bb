import ArgumentParser
import Artifacts
import Collective
import Foundation
import Graph
import ProcessKit
import Publishing

/// `mosaic graph …`: the sharded pin–board graph and its random walks.
struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Build the sharded bipartite pin–board graph and run distributed random walks on it.",
        subcommands: [GraphBuild.self, GraphWalks.self, GraphEvaluate.self])
}

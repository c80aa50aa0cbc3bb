import ArgumentParser
import Collective
import Evaluation
import Foundation
import Learning
import Ranking

/// `mosaic ranker …`: train and score the ranker.
struct RankerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ranker",
        abstract: "The ranker: DCN-v2 + MMoE (+ position tower) or the LR baseline; training and batch scoring.",
        subcommands: [RankerTrain.self, RankerScore.self, RankerWorld.self, RankerGames.self, AdapterCommand.self])
}

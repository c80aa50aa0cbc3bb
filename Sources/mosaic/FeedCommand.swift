import ArgumentParser
import Collective
import EventData
import Events
import Feed
import Foundation

/// `mosaic feed …`: home feeds from published artifacts.
struct FeedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feed",
        abstract: "Home feeds built from a published dataset.",
        subcommands: [FeedCandidatesCommand.self, FeedRankCommand.self, FeedPrecomputeCommand.self, FeedPreview.self])
}

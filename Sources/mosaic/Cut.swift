import ArgumentParser
import Collective
import EventData
import Events
import Foundation

/// `mosaic cut`: the time before which an evaluation's history lies, for chaining jobs.
struct Cut: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cut",
        abstract: "Print the cut (ms) that holds out the last D days of a dataset's events.",
        discussion: """
            The cut is the latest event of the dataset minus D days (`feed candidates --holdout-days D` \
            uses the same one). Pass it to the jobs that take --before-ms, e.g. to train the night's \
            models on the events before a cut and the ranker on the impressions after it:
              CUT=$(mosaic cut --data out/world --holdout-days 1)
            Prints only the number on stdout.
            """)

    @Option(help: "Root folder of the dataset runs (its `current` run is read).") var data = "out/world"
    @Option(help: "Days held out at the end of the events.") var holdoutDays = 1

    func validate() throws {
        guard holdoutDays >= 1 else { throw ValidationError("--holdout-days must be ≥ 1") }
    }

    func run() throws {
        Communicator.runJob { comm in
            let reader = try DatasetReader(root: URL(fileURLWithPath: data))
            let users = try UserEvents.load(world: reader, comm: comm)
            let cut = try UserEvents.cut(holdoutDays: holdoutDays, users: users, comm: comm)
            if comm.isRoot { print(cut) }
        }
    }
}

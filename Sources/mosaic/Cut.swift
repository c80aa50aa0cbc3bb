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
            Prints only the number on stdout. With --out FILE and --var NAME=D (repeatable), writes \
            one NAME=<cut of D days> line per --var to FILE instead: the variables file a pipeline \
            stage reads (Jobs/cuts.job). Reads only the events' timestamps, in blocks (each rank its \
            shards under mpirun).
            """)

    @Option(help: "Root folder of the dataset runs (its `current` run is read).") var data = "out/world"
    @Option(help: "Days held out at the end of the events.") var holdoutDays = 1
    @Option(help: "Write the cuts of the --var options to this file (KEY=value lines) instead of printing.")
    var out: String?
    @Option(
        name: .customLong("var"), help: ArgumentHelp("A cut to write: NAME=DAYS (with --out).", valueName: "NAME=D"))
    var variables: [String] = []

    func validate() throws {
        guard holdoutDays >= 1 else { throw ValidationError("--holdout-days must be ≥ 1") }
        guard (out == nil) == variables.isEmpty else { throw ValidationError("--out and --var go together") }
        for v in variables {
            let parts = v.split(separator: "=")
            guard parts.count == 2, !parts[0].isEmpty, let d = Int(parts[1]), d >= 1 else {
                throw ValidationError("--var \(v): expected NAME=DAYS with DAYS ≥ 1")
            }
        }
    }

    func run() throws {
        Communicator.runJob { comm in
            // Only the events' timestamps are read, each rank its own shards.
            let reader = try DatasetReader(root: URL(fileURLWithPath: data))
            guard let out else {
                let cut = try UserEvents.cut(holdoutDays: holdoutDays, world: reader, comm: comm)
                if comm.isRoot { print(cut) }
                return
            }
            var lines = ""
            for v in variables {
                let parts = v.split(separator: "=")
                let cut = try UserEvents.cut(holdoutDays: Int(parts[1])!, world: reader, comm: comm)
                lines += "\(parts[0])=\(cut)\n"
            }
            if comm.isRoot { try Data(lines.utf8).write(to: URL(fileURLWithPath: out), options: .atomic) }
            try comm.barrier()
        }
    }
}

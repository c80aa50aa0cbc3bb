import ArgumentParser
import Collective
import EventData
import Events
import Foundation
import Linalg
import ProcessKit

/// `mosaic digest`: a rank-count-independent digest of every entity of a dataset run.
struct Digest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "digest",
        abstract: "Print a content digest of each entity of a dataset run (same for any shard count).",
        discussion:
            "Prints `DIGEST <entity> rows=<n> hash=<hex>` lines; two runs hold the same data iff the lines match.")

    @Option(help: "Root folder of dataset runs.") var data = "out/world"
    @Option(help: "Run id (default: the current run).") var runID: String?

    func run() throws {
        Communicator.runJob { comm in
            let reader = try DatasetReader(root: URL(fileURLWithPath: data), runID: runID)
            for entity in reader.entities.sorted() {
                let (rows, digest) = try reader.digest(entity, comm: comm)
                if comm.isRoot { print("DIGEST \(entity) rows=\(rows) hash=\(String(digest, radix: 16))") }
            }
        }
    }
}

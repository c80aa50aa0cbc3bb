import ArgumentParser
import Collective
import EventData
import Events
import Foundation
import ProcessKit

/// `mosaic adapt`: converts an item-sequence dataset (S3-Rec or SASRec format) or Frappe into a
/// dataset run.
struct Adapt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapt",
        abstract: "Convert an item-sequence dataset (S3-Rec or SASRec format) or Frappe into a Mosaic dataset run.",
        discussion: """
            Any dataset: --sequences FILE with --format s3rec (`user item item …` per line; optional \
            --attributes item2attributes JSON) or --format sasrec (`user item` per line). Shortcuts for \
            the shared data folder ($MOSAIC_SHARED or ../shared/data, read at run time, never copied): \
            amazon-games, beauty, frappe. Writes users, pins and events in the layout of `mosaic \
            generate` (docs/data.md has the mapping). Frappe events also get `context` (n, 8) and \
            `split` datasets.
            """)

    @Argument(help: "amazon-games, beauty or frappe (a shared dataset); omit with --sequences.")
    var dataset: String?
    @Option(help: "Users' item sequences, in --format.") var sequences: String?
    @Option(help: "Format of --sequences: s3rec or sasrec.") var format = "s3rec"
    @Option(help: "S3-Rec item attributes JSON (item id → [attribute ids]), optional.") var attributes: String?
    @Option(help: "Folder holding amazon-games/, s3rec-beauty/, frappe/ (default: $MOSAIC_SHARED or ../shared/data).")
    var shared: String?
    @Option(help: "Root folder of dataset runs.") var out = "out/real"
    @Option(help: "Run id (default: the dataset name, or the sequences file's name).") var runID: String?

    func validate() throws {
        switch (dataset, sequences) {
        case (nil, nil):
            throw ValidationError("name a shared dataset (amazon-games, beauty, frappe) or pass --sequences FILE")
        case (.some, .some): throw ValidationError("pass either a shared dataset name or --sequences, not both")
        case (.some(let d), nil):
            guard ["amazon-games", "beauty", "frappe"].contains(d) else {
                throw ValidationError("dataset must be amazon-games, beauty or frappe (or use --sequences FILE)")
            }
        case (nil, .some):
            guard SequenceFormat(rawValue: format) != nil else {
                throw ValidationError("--format must be s3rec or sasrec")
            }
        }
    }

    func run() throws {
        Communicator.runJob { comm in
            let t0 = now()
            let (name, converted, source) = try convert(comm)
            let writer = try DatasetWriter(
                root: URL(fileURLWithPath: out), runID: runID ?? name, producer: "mosaic adapt \(name)",
                config: ["dataset": name, "source": source], comm: comm)
            try writer.write(converted)
            let events = try comm.allreduce(converted.events.count)
            let c = converted
            comm.log(
                String(
                    format: "adapt %@: %d users, %d items, %d source rows → %d events in %.2fs", name, c.totalUsers,
                    c.totalItems, c.totalActions, events, now() - t0))
            if comm.isRoot {
                print(
                    "ADAPT dataset=\(name) users=\(c.totalUsers) items=\(c.totalItems) actions=\(c.totalActions) events=\(events)"
                )
            }
        }
    }

    /// This rank's shard of the converted dataset, its name and its source path.
    func convert(_ comm: Communicator) throws -> (String, RealDataAdapter.Converted, String) {
        if let sequences {
            let data = try ItemSequences.read(path: sequences, format: SequenceFormat(rawValue: format)!)
            let tags = try attributes.map { try ItemSequences.readAttributes(path: $0) }
            let name = ((sequences as NSString).lastPathComponent as NSString).deletingPathExtension.lowercased()
            return (
                name, RealDataAdapter.sequences(data, attributes: tags, rank: comm.rank, ranks: comm.size), sequences
            )
        }
        guard let root = shared.map({ URL(fileURLWithPath: $0) }) ?? SharedData.root() else {
            throw ValidationError("no shared data: pass --shared DIR or set MOSAIC_SHARED (looked for ../shared/data)")
        }
        let (r, n) = (comm.rank, comm.size)
        switch dataset! {
        case "amazon-games":
            let path = root.appendingPathComponent("amazon-games/Video.txt").path
            return ("amazon-games", try RealDataAdapter.amazonGames(path: path, rank: r, ranks: n), path)
        case "beauty":
            let dir = root.appendingPathComponent("s3rec-beauty")
            let c = try RealDataAdapter.beauty(
                path: dir.appendingPathComponent("Beauty.txt").path,
                attributesPath: dir.appendingPathComponent("Beauty_item2attributes.json").path, rank: r, ranks: n)
            return ("beauty", c, dir.path)
        default:
            let dir = root.appendingPathComponent("frappe").path
            return ("frappe", try RealDataAdapter.frappe(directory: dir, rank: r, ranks: n), dir)
        }
    }
}

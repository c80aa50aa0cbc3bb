import ArgumentParser
import Collective
import Events
import Foundation

/// `mosaic adapt`: converts a real dataset of ../shared/data into a dataset run.
struct Adapt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapt",
        abstract: "Convert a shared real dataset (amazon-games, beauty, frappe) into a Mosaic dataset run.",
        discussion: """
            Reads ../shared/data (or --shared, or $MOSAIC_SHARED) at run time; the data is never copied into the
            repository. Writes users, pins and events in the same layout as `mosaic generate` (see
            the README, section Data for the mapping). Frappe events also get `context` (n, 8) and `split` datasets.
            """)

    @Argument(help: "amazon-games, beauty or frappe.") var dataset: String
    @Option(help: "Folder holding amazon-games/, s3rec-beauty/, frappe/ (default: $MOSAIC_SHARED or ../shared/data).") var shared: String?
    @Option(help: "Root folder of dataset runs.") var out = "out/real"
    @Option(help: "Run id (default: the dataset name).") var runID: String?

    func validate() throws {
        guard ["amazon-games", "beauty", "frappe"].contains(dataset) else {
            throw ValidationError("dataset must be amazon-games, beauty or frappe")
        }
    }

    func run() throws {
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        Communicator.runJob { comm in
            let t0 = now()
            guard let root = shared.map({ URL(fileURLWithPath: $0) }) ?? SharedData.root(packageRoot: packageRoot) else {
                throw ValidationError("no shared data: pass --shared DIR or set MOSAIC_SHARED (looked for ../shared/data)")
            }
            let c: RealDataAdapter.Converted
            switch dataset {
            case "amazon-games":
                c = try RealDataAdapter.amazonGames(path: root.appendingPathComponent("amazon-games/Video.txt").path, rank: comm.rank, ranks: comm.size)
            case "beauty":
                c = try RealDataAdapter.beauty(
                    path: root.appendingPathComponent("s3rec-beauty/Beauty.txt").path,
                    attributesPath: root.appendingPathComponent("s3rec-beauty/Beauty_item2attributes.json").path, rank: comm.rank, ranks: comm.size)
            default:
                c = try RealDataAdapter.frappe(directory: root.appendingPathComponent("frappe").path, rank: comm.rank, ranks: comm.size)
            }
            let writer = try DatasetWriter(
                root: URL(fileURLWithPath: out), runID: runID ?? dataset, producer: "mosaic adapt \(dataset)",
                config: ["dataset": dataset, "source": root.path], comm: comm)
            for t in [c.users, c.pins, c.events] {
                _ = try writer.writer(t.schema, columns: t.presentColumns)
                try writer.append(t)
            }
            let group = try writer.writer(.events).group
            for (name, column) in c.extraEventColumns.sorted(by: { $0.key < $1.key }) {
                let rows = column.values.count / column.width
                try group.write(name, column.values, shape: column.width == 1 ? [rows] : [rows, column.width])
            }
            try writer.commit()
            let events = try comm.allreduce(c.events.count)
            comm.log(String(format: "adapt %@: %d users, %d items, %d source rows → %d events in %.2fs", dataset, c.totalUsers, c.totalItems, c.totalActions, events, now() - t0))
            if comm.isRoot { print("ADAPT dataset=\(dataset) users=\(c.totalUsers) items=\(c.totalItems) actions=\(c.totalActions) events=\(events)") }
        }
    }
}

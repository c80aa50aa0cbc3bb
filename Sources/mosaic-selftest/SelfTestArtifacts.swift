import ArgumentParser
import Artifacts
import Collective
import Foundation
import Publishing

/// Every rank writes its shard of a 1,000-row artifact into one run; the run is committed and
/// re-read, and a digest of the whole artifact is printed. The digest must not depend on the
/// rank count.
struct SelfTestArtifacts: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "artifacts")

    @Option(help: "Root folder of the runs.") var root: String
    @Option(help: "Run id.") var runID = "selftest"
    @Option(help: "Total rows over all ranks.") var rows = 1000

    func run() throws {
        Communicator.runJob { comm in
            // Rank r owns the rows i with i % size == r (the usual hash-by-id sharding).
            let mine = stride(from: comm.rank, to: rows, by: comm.size).map { Int64($0) }
            let writer = try RunWriter(
                root: URL(fileURLWithPath: root), runID: runID, producer: "mosaic selftest artifacts",
                config: ["rows": "\(rows)"], comm: comm)
            let path = try writer.shardPath(artifact: "items")
            do {
                let file = try H5File(path: path, mode: .create)
                try file.root.write("id", mine, shape: [mine.count])
                try file.root.write(
                    "value", mine.flatMap { [Float($0), Float($0) * 0.5] }, shape: [mine.count, 2], compression: 4)
                try file.root.setAttribute("rank", Int64(comm.rank))
            }
            try writer.record(artifact: "items", path: path, rows: mine.count)
            let manifest = try writer.commit()
            // Every rank re-reads the published run (what a serving shard or next stage does).
            let run = try PublishedRun.open(root: URL(fileURLWithPath: root))
            guard run.manifest == manifest, manifest.artifact("items")?.files.count == comm.size,
                manifest.artifact("items")?.rows == Int64(rows)
            else {
                throw ArtifactError(
                    file: root, message: "published manifest does not list \(comm.size) shards of \(rows) rows")
            }
            var digest: Double = 0
            if comm.isRoot {
                for p in try run.paths(of: "items") {
                    let file = try H5File(path: p, mode: .read)
                    let ids = try file.root.read("id", as: Int64.self)
                    let values = try file.root.dataset("value", of: Float.self, shape: [ids.count, 2]).read(
                        as: Float.self)
                    for (i, id) in ids.enumerated() {
                        digest += Double(id) * Double(values[2 * i]) + Double(values[2 * i + 1])
                    }
                }
                print(
                    "SELFTEST OK ranks=\(comm.size) files=\(manifest.artifact("items")!.files.count) digest=\(digest)")
            }
        }
    }
}

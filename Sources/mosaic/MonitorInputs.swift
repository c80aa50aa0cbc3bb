import Artifacts
import Collective
import Evaluation
import Foundation
import Models

extension MonitorCommand {
    /// Collective: the calibrated P(save) and P(closeup) of the ranked candidates of the feeds
    /// run at `root` (group `ranked`), rank r reading shards r, r + size, …; nil when absent.
    static func scores(_ root: URL, comm: Communicator) throws -> [String: [Double]]? {
        let found = FileManager.default.fileExists(atPath: root.appendingPathComponent(PublishedRun.currentLink).path)
        guard try comm.allreduce(Int32(found ? 1 : 0), op: .min) == 1 else { return nil }
        var out = ["save": [Double](), "closeup": [Double]()]
        for (i, path) in try PublishedRun.open(root: root).paths(of: "feeds").enumerated()
        where i % comm.size == comm.rank {
            let g = try H5File(path: path, mode: .read).root.group("ranked")
            out["save"]! += try g.read("p_save", as: Float.self).map(Double.init)
            out["closeup"]! += try g.read("p_closeup", as: Float.self).map(Double.init)
        }
        return out
    }

    /// Collective: the drift of the PinSage vectors from the base night's embeddings run to
    /// the new one's (each rank reads its slice of each); nil when either is absent or the
    /// widths differ.
    static func embeddings(_ base: URL, _ new: URL, comm: Communicator) throws -> EmbeddingDrift? {
        let roots = [base, new].map { $0.appendingPathComponent("embeddings") }
        let found = roots.allSatisfy {
            FileManager.default.fileExists(atPath: $0.appendingPathComponent(PublishedRun.currentLink).path)
        }
        guard try comm.allreduce(Int32(found ? 1 : 0), op: .min) == 1 else { return nil }
        let b = try PinEmbeddings.readMine(root: roots[0], comm: comm)
        let n = try PinEmbeddings.readMine(root: roots[1], comm: comm)
        var widths = [Int64(b.d), Int64(n.d)]  // an empty slice may say 0
        try comm.allreduce(&widths, op: .max)
        guard widths[0] == widths[1], widths[0] > 0 else { return nil }
        let d = Int(widths[0])
        return try EmbeddingDrift(baseIDs: b.ids, base: b.vectors, newIDs: n.ids, new: n.vectors, d: d, comm: comm)
    }

    /// Writes monitor.json and monitor.html into `folder` (rank 0).
    static func write(_ report: MonitorReport, to folder: String, comm: Communicator) throws {
        guard comm.isRoot else { return }
        try StageSummary.write(report, to: folder + "/monitor.json")
        try Data(report.html().utf8).write(to: URL(fileURLWithPath: folder + "/monitor.html"), options: .atomic)
    }
}

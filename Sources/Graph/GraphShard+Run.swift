import Artifacts
import Collective
import Foundation

extension GraphShard {
    /// Collective: loads the graph of a published run (artifact `graph`) for this world. When
    /// the run was written by the same number of ranks, rank r reads shard r; otherwise each
    /// rank reads shards `i mod size` and the edges are re-partitioned with `GraphBuilder.build`
    /// (no pruning), so memory per rank stays proportional to its part.
    public static func load(root: URL, runID: String? = nil, comm: Communicator) throws -> GraphShard {
        let run = try PublishedRun.open(root: root, runID: runID)
        let paths = try run.paths(of: "graph")
        if paths.count == comm.size {
            let shard = try read(path: paths[comm.rank])
            guard shard.rank == comm.rank, shard.ranks == comm.size else {
                throw GraphError(
                    "\(paths[comm.rank]): shard \(shard.rank) of \(shard.ranks), expected \(comm.rank) of \(comm.size)")
            }
            return shard
        }
        var pins = [Int64](), boards = [Int64](), isolated = [Int64]()
        for (i, path) in paths.enumerated() where i % comm.size == comm.rank {
            let s = try read(path: path)
            for r in 0..<s.pins.count {
                let d = s.pins.degree(r)
                if d == 0 { isolated.append(s.pins.ids[r]) }
                for k in Int(s.pins.offsets[r])..<Int(s.pins.offsets[r + 1]) {
                    pins.append(s.pins.ids[r]); boards.append(s.pins.neighbors[k])
                }
            }
        }
        return try GraphBuilder.build(pins: pins, boards: boards, isolated: isolated, comm: comm).0
    }
}

extension ImportanceNeighbors {
    /// Reads every shard of the `neighbors` artifact of a published walks run (for evaluation
    /// on one process; the whole table is T entries per pin).
    public static func readAll(root: URL, runID: String? = nil) throws -> ImportanceNeighbors {
        let run = try PublishedRun.open(root: root, runID: runID)
        var all: ImportanceNeighbors? = nil
        for path in try run.paths(of: "neighbors") {
            let n = try read(path: path)
            if all == nil { all = ImportanceNeighbors(t: n.t) }
            all!.pins += n.pins; all!.ids += n.ids; all!.weights += n.weights; all!.counts += n.counts
            all!.h = max(all!.h, n.h); all!.hard += n.hard
        }
        return all ?? ImportanceNeighbors(t: 0)
    }
}

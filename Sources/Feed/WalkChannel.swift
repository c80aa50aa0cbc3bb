import Artifacts
import Collective
import Foundation
import Graph

/// The Pixie channel: the walks' importance neighbours of a user's recent engagements,
/// aggregated by visit weight: pin j scores Σ over the user's last engaged pins e (weight
/// 1 / (1 + age rank), most recent first) of weight(e → j); seen pins left out.
///
/// The neighbour lists stay sharded: each rank holds the shards `i mod size` of a walks run.
/// A lookup allgathers every rank's requested pins; each rank answers the ones it holds, and
/// each answer goes back to the rank that asked (alltoallv). Memory: the rank's shards and one
/// round of requests and answers.
public struct WalkChannel: Sendable {
    let neighbors: [Int64: (ids: [Int64], weights: [Float])]

    /// Reads this rank's shards of the `neighbors` artifact of the walks run at `root`.
    public static func load(root: URL, runID: String? = nil, comm: Communicator) throws -> WalkChannel {
        let paths = try PublishedRun.open(root: root, runID: runID).paths(of: "neighbors")
        var table: [Int64: (ids: [Int64], weights: [Float])] = [:]
        for (i, path) in paths.enumerated() where i % comm.size == comm.rank {
            let n = try ImportanceNeighbors.read(path: path)
            for r in 0..<n.pins.count {
                let list = n.neighbors(r)
                table[n.pins[r]] = (list.map(\.id), list.map(\.weight))
            }
        }
        return WalkChannel(neighbors: table)
    }

    init(neighbors: [Int64: (ids: [Int64], weights: [Float])]) { self.neighbors = neighbors }

    /// Collective: the neighbour lists of this rank's `pins` (each rank passes its own list),
    /// aligned with `pins`; a pin no rank holds gets an empty list.
    public func lookup(_ pins: [Int64], comm: Communicator) throws -> [(ids: [Int64], weights: [Float])] {
        let (all, counts) = try comm.allgatherv(pins)
        // To each asking rank r: [index in r's list, n, n ids, n weight bit patterns] per held pin.
        var outgoing = [[Int64]](repeating: [], count: comm.size)
        var start = 0
        for r in 0..<comm.size {
            for i in 0..<counts[r] {
                guard let list = neighbors[all[start + i]] else { continue }
                outgoing[r] += [Int64(i), Int64(list.ids.count)] + list.ids
                outgoing[r] += list.weights.map { Int64($0.bitPattern) }
            }
            start += counts[r]
        }
        let (received, _) = try comm.alltoallv(outgoing.flatMap { $0 }, sendCounts: outgoing.map(\.count))
        var out = [(ids: [Int64], weights: [Float])](repeating: ([], []), count: pins.count)
        var at = 0
        while at < received.count {
            let i = Int(received[at]), n = Int(received[at + 1])
            out[i].ids = Array(received[(at + 2)..<(at + 2 + n)])
            out[i].weights = received[(at + 2 + n)..<(at + 2 + 2 * n)].map { Float(bitPattern: UInt32($0)) }
            at += 2 + 2 * n
        }
        return out
    }

    /// A user's candidates from the neighbour lists of their recent engaged pins (`lists[e]` for
    /// `engaged[e]`, most recent last): the best `k` by aggregated weight (ties to the smaller
    /// id), `exclude` and the engaged pins themselves left out.
    public static func candidates(
        engaged: [Int64], lists: [(ids: [Int64], weights: [Float])], k: Int, exclude: Set<Int64>
    ) -> [Int64] {
        var score: [Int64: Float] = [:]
        for (age, e) in engaged.indices.reversed().enumerated() {
            let w = 1 / Float(1 + age)
            for (j, weight) in zip(lists[e].ids, lists[e].weights) { score[j, default: 0] += w * weight }
        }
        let skip = exclude.union(engaged)
        return score.filter { !skip.contains($0.key) }.sorted { ($0.value, -$0.key) > ($1.value, -$1.key) }
            .prefix(k).map(\.key)
    }
}

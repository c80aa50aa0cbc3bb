import Collective
import EventData
import Events
import Foundation
import Graph

/// Positive pairs from consecutive saves: pins that a user saved one right after the other
/// (within `window` saves, either order) are related. For every pin, its top-`width` partners by
/// summed weight (1/distance per occurrence) become its sequence neighbours, normalised to sum 1.
public enum SequencePairs {
    public struct Parameters: Sendable, Equatable {
        /// Partners up to this many saves apart (1: the next and the previous save only).
        public var window: Int
        /// Each user's last `holdOut` saves are left out (2 for leave-one-out evaluation, as
        /// `graph build --hold-out`).
        public var holdOut: Int
        /// Sequence neighbours kept per pin.
        public var width: Int

        public init(window: Int = 1, holdOut: Int = 0, width: Int = 10) {
            self.window = window
            self.holdOut = holdOut
            self.width = width
        }
    }

    /// Rows on this rank: `pins` (n), `ids` (n, width) −1 padded, `weights` (n, width).
    public struct Rows: Sendable {
        public var width: Int
        public var pins: [Int64] = []
        public var ids: [Int64] = []
        public var weights: [Float] = []
        public init(width: Int) { self.width = width }
    }

    /// Pairs (a, b, weight) of the save sequences in `users`/`pins`/`timestamps` (rows of any
    /// order; a user's saves are ordered by (time, pin id), so the pairs do not depend on the
    /// row order), both directions.
    public static func pairs(
        users: [Int64], pins: [Int64], timestamps: [Int64], parameters: Parameters
    ) -> (a: [Int64], b: [Int64], w: [Float]) {
        var byUser: [Int64: [Int]] = [:]
        for i in users.indices { byUser[users[i], default: []].append(i) }
        var a = [Int64](), b = [Int64](), w = [Float]()
        for u in byUser.keys.sorted() {
            var rows = byUser[u]!
            rows.sort { (timestamps[$0], pins[$0]) < (timestamps[$1], pins[$1]) }
            let seq = rows.dropLast(parameters.holdOut).map { pins[$0] }
            for k in seq.indices {
                for d in 1...max(1, parameters.window) where k + d < seq.count && seq[k] != seq[k + d] {
                    a += [seq[k], seq[k + d]]
                    b += [seq[k + d], seq[k]]
                    w += [1 / Float(d), 1 / Float(d)]
                }
            }
        }
        return (a, b, w)
    }

    /// Top-`width` partners per pin from pairs that all belong to pins of this rank, rows sorted
    /// by pin; partners by weight descending, then id ascending (deterministic).
    public static func top(a: [Int64], b: [Int64], w: [Float], width: Int) -> Rows {
        var sums: [Int64: [Int64: Double]] = [:]
        // Summed in (a, b, w) order: the same result whatever order the pairs arrived in.
        let order = a.indices.sorted { (a[$0], b[$0], w[$0]) < (a[$1], b[$1], w[$1]) }
        for i in order { sums[a[i], default: [:]][b[i], default: 0] += Double(w[i]) }
        var out = Rows(width: width)
        for pin in sums.keys.sorted() {
            let partners = sums[pin]!.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
                .prefix(width)
            let total = partners.reduce(0.0) { $0 + $1.value }
            out.pins.append(pin)
            for k in 0..<width {
                if k < partners.count {
                    let p = partners[partners.startIndex + k]
                    out.ids.append(p.key)
                    out.weights.append(Float(p.value / total))
                } else {
                    out.ids.append(-1)
                    out.weights.append(0)
                }
            }
        }
        return out
    }

    /// Collective: reads this rank's shards of a dataset run — `saves` (user, pin, saved_at_ms)
    /// when the run has them, else the save `events` — routes each save to its user's rank (a
    /// hash of the user id) so every user's sequence is whole, makes the pairs, routes each to
    /// its first pin's owner (`GraphPartition.pinOwner`) and keeps the top partners there.
    /// Memory per rank is proportional to its saves and its pins' pairs.
    public static func build(data: URL, dataRun: String?, parameters: Parameters, comm: Communicator) throws -> Rows {
        let reader = try DatasetReader(root: data, runID: dataRun)
        var users = [Int64](), rows = [Int64]()  // rows: (pin, time) pairs
        if reader.entities.contains("saves") {
            for path in try reader.myShards("saves", comm: comm) {
                let t = try DatasetReader.readShard(path, entity: "saves")
                let u = t.i64("user_id"), p = t.i64("pin_id"), s = t.i64("saved_at_ms")
                for i in 0..<t.count {
                    users.append(u[i]); rows += [p[i], s[i]]
                }
            }
        } else if reader.entities.contains("events") {
            let save = EventType.save.rawValue
            for path in try reader.myShards("events", comm: comm) {
                let t = try DatasetReader.readShard(path, entity: "events")
                let u = t.i64("user_id"), p = t.i64("pin_id"), s = t.i64("timestamp_ms")
                guard let types = t.uint8["event_type"] else {
                    throw GraphError("\(path): /events has no event_type column")
                }
                for i in 0..<t.count where types[i] == save {
                    users.append(u[i]); rows += [p[i], s[i]]
                }
            }
        } else {
            throw GraphError(
                "\(reader.run.directory.path): consecutive-save positives need a 'saves' or 'events' entity (has: \(reader.entities.joined(separator: ", ")))"
            )
        }
        let (ru, rr) = try NodeStore.routeRows(
            users, rows, width: 2, dest: users.map { GraphPartition.boardOwner($0, ranks: comm.size) }, comm: comm)
        users = []; rows = []
        let (a, b, w) = pairs(
            users: ru, pins: (0..<ru.count).map { rr[2 * $0] }, timestamps: (0..<ru.count).map { rr[2 * $0 + 1] },
            parameters: parameters)
        let dest = a.map { GraphPartition.pinOwner($0, ranks: comm.size) }
        let (ra, rb) = try NodeStore.routeRows(a, b, width: 1, dest: dest, comm: comm)
        let (_, rw) = try NodeStore.routeRows(a, w, width: 1, dest: dest, comm: comm)
        return top(a: ra, b: rb, w: rw, width: parameters.width)
    }
}

import Artifacts
import Foundation
import Publishing

/// Every user's merged candidates (the funnel's first stage), with the channel(s) that proposed
/// each pin and its rank in each channel.
///
/// Merge: the channels' ranked lists interleaved by weight (`merge`; equal weights are
/// round-robin), duplicates kept once with every channel that proposed them, up to `count` per
/// user.
///
/// HDF5 layout of each shard `candidates/part-RRRRR-of-SSSSS.h5` (one per rank, the rank's
/// users): `user_id` int64 (n); `offsets` int64 (n + 1), user i's candidates being rows
/// `offsets[i] ..< offsets[i + 1]` of `pin_id` int64, `channels` uint8 (bit c set when channel c
/// proposed the pin) and `channel_rank` int32 (rows × channels: 0-based rank in that channel's
/// list, −1 when absent); attributes `channel_names` ("content,trending"), `cut_ms`,
/// `source_run`.
public struct Candidates: Sendable {
    /// Channel names, in bit order.
    public var channelNames: [String]
    public var users: [Int64] = []
    public var offsets: [Int64] = [0]
    public var pins: [Int64] = [], channels: [UInt8] = [], channelRanks: [Int32] = []

    public init(channelNames: [String]) {
        precondition(channelNames.count <= 8, "at most 8 channels fit the uint8 mask")
        self.channelNames = channelNames
    }

    /// Appends `user`'s candidates merged from `lists` (one ranked list per channel, in
    /// `channelNames` order), at most `count`, channel c taking a share of the slots in
    /// proportion to `weights[c]` (empty: equal shares).
    public mutating func append(user: Int64, lists: [[Int64]], count: Int, weights: [Double] = []) {
        precondition(lists.count == channelNames.count)
        let merged = Self.merge(lists, count: count, weights: weights)
        // Each merged pin's first rank in each channel: one pass over the lists.
        let w = lists.count
        var slot = [Int64: Int](minimumCapacity: merged.count)
        for (i, pin) in merged.enumerated() { slot[pin] = i }
        var ranks = [Int32](repeating: -1, count: merged.count * w)
        var masks = [UInt8](repeating: 0, count: merged.count)
        for (c, list) in lists.enumerated() {
            for (r, pin) in list.enumerated() {
                guard let i = slot[pin], ranks[i * w + c] < 0 else { continue }
                ranks[i * w + c] = Int32(r)
                masks[i] |= 1 << UInt8(c)
            }
        }
        users.append(user)
        pins += merged
        channels += masks
        channelRanks += ranks
        offsets.append(Int64(pins.count))
    }

    /// Merges channels' ranked lists, duplicates dropped, up to `count`: the candidate set
    /// before a ranker. Each next slot goes to the channel with the smallest
    /// (slots taken + 1) / weight (ties to the earlier channel), so channel c ends with a share
    /// of about weight_c / Σ weights; a channel that runs out gives its slots to the others;
    /// a weight of 0 takes nothing. Equal weights (the default) are round-robin: the first of
    /// each channel, then the second of each, …
    public static func merge(_ lists: [[Int64]], count: Int, weights: [Double] = []) -> [Int64] {
        let w = weights.isEmpty ? [Double](repeating: 1, count: lists.count) : weights
        precondition(w.count == lists.count && w.allSatisfy { $0 >= 0 }, "one weight ≥ 0 per channel")
        var out: [Int64] = [], taken = Set<Int64>()
        var cursor = [Int](repeating: 0, count: lists.count), slots = [Int](repeating: 0, count: lists.count)
        var live = Set(lists.indices.filter { w[$0] > 0 })
        while out.count < count, !live.isEmpty {
            let l = live.min { (Double(slots[$0] + 1) / w[$0], $0) < (Double(slots[$1] + 1) / w[$1], $1) }!
            while cursor[l] < lists[l].count, taken.contains(lists[l][cursor[l]]) { cursor[l] += 1 }
            guard cursor[l] < lists[l].count else {
                live.remove(l)
                continue
            }
            out.append(lists[l][cursor[l]])
            taken.insert(lists[l][cursor[l]])
            cursor[l] += 1
            slots[l] += 1
        }
        return out
    }

    /// User i's candidate pins.
    public func pins(ofUser i: Int) -> ArraySlice<Int64> { pins[Int(offsets[i])..<Int(offsets[i + 1])] }

    /// Writes this rank's shard into `run` and records it.
    public func write(to run: RunWriter, cutMs: Int64, sourceRun: String) throws {
        let path = try run.shardPath(artifact: "candidates")
        do {
            let f = try H5File(path: path, mode: .create)
            try f.root.write("user_id", users)
            try f.root.write("offsets", offsets)
            try f.root.write("pin_id", pins)
            try f.root.write("channels", channels)
            try f.root.write("channel_rank", channelRanks, shape: [pins.count, channelNames.count])
            try f.root.setAttribute("channel_names", channelNames.joined(separator: ","))
            try f.root.setAttribute("cut_ms", cutMs)
            try f.root.setAttribute("source_run", sourceRun)
            try f.flush()
        }
        try run.record(artifact: "candidates", path: path, rows: users.count)
    }

    /// Reads one shard file.
    public static func read(path: String) throws -> Candidates {
        let f = try H5File(path: path, mode: .read)
        var c = Candidates(
            channelNames: try f.root.stringAttribute("channel_names").split(separator: ",").map(String.init))
        c.users = try f.root.read("user_id", as: Int64.self)
        c.offsets = try f.root.read("offsets", as: Int64.self)
        c.pins = try f.root.read("pin_id", as: Int64.self)
        c.channels = try f.root.read("channels", as: UInt8.self)
        c.channelRanks = try f.root.read("channel_rank", as: Int32.self)
        guard c.offsets.count == c.users.count + 1, c.offsets.last == Int64(c.pins.count),
            c.channels.count == c.pins.count, c.channelRanks.count == c.pins.count * c.channelNames.count
        else {
            throw ArtifactError(
                file: path, message: "inconsistent candidates: offsets, pins, channels or ranks disagree")
        }
        return c
    }
}

import Artifacts
import Collective
import EventData
import Foundation
import Publishing
import Ranking

/// The ranked feeds of this rank's users: the artifact `feeds` of `mosaic feed rank`.
///
/// HDF5 layout of each shard `feeds/part-RRRRR-of-SSSSS.h5` (one per rank, the rank's users):
/// `user_id` int64 (n); `pin_id` int64 (n, k), the feed after the diversity re-rank, −1 where
/// shorter (the layout of `feed precompute`, so the serving shard reads either); `score`,
/// `p_save`, `p_closeup` float32 (n, k) and `channels` uint8 (n, k), the candidate's channel
/// mask; group `/ranked`: `offsets` int64 (n + 1), user i's ranked candidates (best first, up to
/// `keep`) being rows `offsets[i] ..< offsets[i + 1]` of `pin_id` int64, `score`, `p_save`,
/// `p_closeup` float32, `channels` uint8, and the rows' ranker features `ids` int64 (N, fields),
/// `dense` float32 (N, dense width) and their content vectors once per pin of the shard,
/// `content_pin_id` int64 (m) and `content` float32 (m, d) — what the serving shard re-scores
/// online. Attributes
/// `k`, `cut_ms`, `source_run`, `channel_names`, `ranker`, `save_weight`, `closeup_weight`.
public struct RankedFeeds: Sendable {
    public var k: Int
    public var users: [Int64] = []
    public var feedPins: [Int64] = [], feedScore: [Float] = [], feedSave: [Float] = [], feedCloseup: [Float] = []
    public var feedChannels: [UInt8] = []
    public var offsets: [Int64] = [0]
    public var pins: [Int64] = [], score: [Float] = [], pSave: [Float] = [], pCloseup: [Float] = []
    public var channels: [UInt8] = []
    /// Per feed slot (users × k, zero padding): the ranker features of the pin
    /// (`FeedRanking.Ranked.ids`, `dense`, `content`), and the content width d.
    public var feedIDs: [Int64] = [], feedDense: [Float] = [], feedContent: [Float] = []
    public var contentWidth = 0
    /// Per ranked candidate (aligned with `pins`): its ranker field ids and dense values; the
    /// content vectors once per pin (`contentPins`, d each in `content`).
    public var rankedIDs: [Int64] = [], rankedDense: [Float] = []
    public var contentPins: [Int64] = [], content: [Float] = []
    var contentRow: [Int64: Int] = [:]

    /// Feeds of length `k`; `contentWidth`: the ranker's content width d (0: taken from the
    /// first user with ranked candidates).
    public init(k: Int, contentWidth: Int = 0) {
        self.k = k
        self.contentWidth = contentWidth
    }

    /// Appends one user's ranking (`FeedRanking.Ranked`), with the channel mask of each pin.
    public mutating func append(user: Int64, _ r: FeedRanking.Ranked, channelOf: [Int64: UInt8]) {
        users.append(user)
        let f = FeedFeatures.fieldNames.count, w = FeedFeatures.denseNames.count
        if contentWidth == 0, !r.pins.isEmpty, r.ids.count == r.pins.count * f {
            contentWidth = r.content.count / r.pins.count
        }
        let d = contentWidth
        for slot in 0..<k where keepsFeatures {
            if slot < r.feed.count, r.ids.count == r.pins.count * f {
                let j = r.feed[slot]
                feedIDs += r.ids[j * f..<(j + 1) * f]
                feedDense += r.dense[j * w..<(j + 1) * w]
                feedContent += r.content[j * d..<(j + 1) * d]
            } else {
                feedIDs += [Int64](repeating: 0, count: f)
                feedDense += [Float](repeating: 0, count: w)
                feedContent += [Float](repeating: 0, count: d)
            }
        }
        for slot in 0..<k {
            if slot < r.feed.count {
                let j = r.feed[slot]
                feedPins.append(r.pins[j])
                feedScore.append(r.score[j])
                feedSave.append(r.pSave[j])
                feedCloseup.append(r.pCloseup[j])
                feedChannels.append(channelOf[r.pins[j]] ?? 0)
            } else {
                feedPins.append(-1)
                feedScore.append(0)
                feedSave.append(0)
                feedCloseup.append(0)
                feedChannels.append(0)
            }
        }
        if keepsFeatures, r.ids.count == r.pins.count * f, r.content.count == r.pins.count * d {
            rankedIDs += r.ids
            rankedDense += r.dense
            for (j, p) in r.pins.enumerated() where contentRow[p] == nil {
                contentRow[p] = contentPins.count
                contentPins.append(p)
                content += r.content[j * d..<(j + 1) * d]
            }
        }
        pins += r.pins
        score += r.score
        pSave += r.pSave
        pCloseup += r.pCloseup
        channels += r.pins.map { channelOf[$0] ?? 0 }
        offsets.append(Int64(pins.count))
    }

    /// User i's feed (padding dropped).
    public func feed(ofUser i: Int) -> [Int64] { feedPins[i * k..<(i + 1) * k].filter { $0 >= 0 } }

    /// User i's ranked candidates, best first.
    public func ranked(ofUser i: Int) -> ArraySlice<Int64> { pins[Int(offsets[i])..<Int(offsets[i + 1])] }

    /// Whether `append` keeps the feed pins' ranker features (false: pins, scores and channels
    /// only, e.g. a copy kept for the evaluation while the features stream to the writer).
    public var keepsFeatures = true

    /// Writes this rank's shard into `run` and records it.
    public func write(to run: RunWriter, attributes: [String: String], cutMs: Int64) throws {
        let n = users.count
        let complete =
            feedIDs.count == n * k * FeedFeatures.fieldNames.count && feedContent.count == n * k * contentWidth
        let writer = try ShardWriter(run: run, k: k, contentWidth: complete ? contentWidth : 0)
        try writer.append(self)
        try writer.finish(attributes: attributes, cutMs: cutMs)
    }

    /// This rank's shard of `feeds` written round by round (`append` each round's users, then
    /// `finish`): the layout of `RankedFeeds` in extendable datasets (chunks of about 1 MiB),
    /// so a rank never holds more than one round of feeds. The features group is written when
    /// the content width is known (> 0).
    public final class ShardWriter {
        let run: RunWriter
        let path: String
        let k: Int, contentWidth: Int
        var file: H5File?
        var datasets: [String: H5Dataset] = [:]
        var users = 0, rankedRows: Int64 = 0
        /// The pins whose content vector this shard holds (each written once).
        var contentWritten = Set<Int64>()

        /// Creates the shard file of this rank in `run`, with no users yet.
        public init(run: RunWriter, k: Int, contentWidth: Int) throws {
            self.run = run
            self.k = k
            self.contentWidth = contentWidth
            path = try run.shardPath(artifact: "feeds")
            let f = try H5File(path: path, mode: .create)
            file = f
            let nf = FeedFeatures.fieldNames.count, nd = FeedFeatures.denseNames.count
            func make<T: H5Scalar>(_ name: String, _ type: T.Type, _ row: [Int], in g: H5Group) throws {
                let width = row.reduce(1, *)
                let rows = Swift.max(1, (1 << 20) / Swift.max(1, width * MemoryLayout<T>.size))
                datasets[name] = try g.createDataset(
                    name.split(separator: "/").last.map(String.init)!, of: T.self, shape: [0] + row,
                    extendable: true, chunk: [rows] + row)
            }
            try make("user_id", Int64.self, [], in: f.root)
            try make("pin_id", Int64.self, [k], in: f.root)
            try make("score", Float.self, [k], in: f.root)
            try make("p_save", Float.self, [k], in: f.root)
            try make("p_closeup", Float.self, [k], in: f.root)
            try make("channels", UInt8.self, [k], in: f.root)
            if contentWidth > 0 {
                // The feed pins' ranker features, for the serving shard's online re-scoring.
                let features = try f.root.createGroup("features")
                try make("features/ids", Int64.self, [k, nf], in: features)
                try make("features/dense", Float.self, [k, nd], in: features)
                try make("features/content", Float.self, [k, contentWidth], in: features)
            }
            let g = try f.root.createGroup("ranked")
            try make("ranked/offsets", Int64.self, [], in: g)
            try make("ranked/pin_id", Int64.self, [], in: g)
            try make("ranked/score", Float.self, [], in: g)
            try make("ranked/p_save", Float.self, [], in: g)
            try make("ranked/p_closeup", Float.self, [], in: g)
            try make("ranked/channels", UInt8.self, [], in: g)
            if contentWidth > 0 {
                // The ranked candidates' ranker features (the serving shard re-scores them).
                try make("ranked/ids", Int64.self, [nf], in: g)
                try make("ranked/dense", Float.self, [nd], in: g)
                try make("ranked/content_pin_id", Int64.self, [], in: g)
                try make("ranked/content", Float.self, [contentWidth], in: g)
            }
            try datasets["ranked/offsets"]!.append([Int64(0)])
        }

        /// Appends every user of `feeds` (same `k`; with features when this shard has them).
        public func append(_ feeds: RankedFeeds) throws {
            precondition(feeds.k == k, "ShardWriter.append: feeds of another k")
            let n = feeds.users.count
            guard n > 0 else { return }
            try datasets["user_id"]!.append(feeds.users)
            try datasets["pin_id"]!.append(feeds.feedPins)
            try datasets["score"]!.append(feeds.feedScore)
            try datasets["p_save"]!.append(feeds.feedSave)
            try datasets["p_closeup"]!.append(feeds.feedCloseup)
            try datasets["channels"]!.append(feeds.feedChannels)
            if contentWidth > 0 {
                precondition(
                    feeds.feedIDs.count == n * k * FeedFeatures.fieldNames.count
                        && feeds.feedContent.count == n * k * contentWidth,
                    "ShardWriter.append: feeds without their features")
                try datasets["features/ids"]!.append(feeds.feedIDs)
                try datasets["features/dense"]!.append(feeds.feedDense)
                try datasets["features/content"]!.append(feeds.feedContent)
            }
            try datasets["ranked/offsets"]!.append(feeds.offsets.dropFirst().map { $0 + rankedRows })
            try datasets["ranked/pin_id"]!.append(feeds.pins)
            try datasets["ranked/score"]!.append(feeds.score)
            try datasets["ranked/p_save"]!.append(feeds.pSave)
            try datasets["ranked/p_closeup"]!.append(feeds.pCloseup)
            try datasets["ranked/channels"]!.append(feeds.channels)
            if contentWidth > 0 {
                precondition(
                    feeds.rankedIDs.count == feeds.pins.count * FeedFeatures.fieldNames.count
                        && feeds.rankedDense.count == feeds.pins.count * FeedFeatures.denseNames.count,
                    "ShardWriter.append: ranked candidates without their features")
                try datasets["ranked/ids"]!.append(feeds.rankedIDs)
                try datasets["ranked/dense"]!.append(feeds.rankedDense)
                var newPins: [Int64] = [], newContent: [Float] = []
                for (j, p) in feeds.contentPins.enumerated() where contentWritten.insert(p).inserted {
                    newPins.append(p)
                    newContent += feeds.content[j * contentWidth..<(j + 1) * contentWidth]
                }
                if !newPins.isEmpty {
                    try datasets["ranked/content_pin_id"]!.append(newPins)
                    try datasets["ranked/content"]!.append(newContent)
                }
            }
            users += n
            rankedRows += feeds.offsets.last! - feeds.offsets.first!
        }

        /// Sets the attributes (`k`, `cut_ms` and `attributes`), closes the file and records it.
        public func finish(attributes: [String: String], cutMs: Int64) throws {
            guard let f = file else { return }
            try f.root.setAttribute("k", Int64(k))
            try f.root.setAttribute("cut_ms", cutMs)
            for (key, value) in attributes.sorted(by: { $0.key < $1.key }) { try f.root.setAttribute(key, value) }
            try f.flush()
            datasets = [:]
            file = nil
            try run.record(artifact: "feeds", path: path, rows: users)
        }
    }
}

extension Candidates {
    /// Appends user `i` of `other` (same channels) with its rows.
    public mutating func appendUser(_ i: Int, of other: Candidates) {
        precondition(other.channelNames == channelNames, "appendUser: other channels")
        let rows = Int(other.offsets[i])..<Int(other.offsets[i + 1]), w = channelNames.count
        users.append(other.users[i])
        pins += other.pins[rows]
        channels += other.channels[rows]
        channelRanks += other.channelRanks[rows.lowerBound * w..<rows.upperBound * w]
        offsets.append(Int64(pins.count))
    }

    /// Collective: the candidates of the users this rank owns from the candidates run at `root`
    /// (`Sharding.owner` over `comm.size`): rank r reads shards r, r + size, …, and when the run
    /// was written by another rank count the users are routed to their owners.
    public static func readMine(root: URL, comm: Communicator) throws -> Candidates {
        let paths = try PublishedRun.open(root: root).paths(of: "candidates")
        var names: [String] = []
        var mine: Candidates? = nil
        for (i, path) in paths.enumerated() where i % comm.size == comm.rank {
            let c = try read(path: path)
            if mine == nil { mine = Candidates(channelNames: c.channelNames) }
            for u in c.users.indices { mine!.appendUser(u, of: c) }
        }
        names = try comm.broadcast(string: mine?.channelNames.joined(separator: ",") ?? "").split(separator: ",").map(
            String.init)
        var out = mine ?? Candidates(channelNames: names)
        if paths.count == comm.size { return out }
        // Route each user's rows to the owner: [user, n, pins…, masks…, ranks…].
        let w = names.count
        var outgoing = [[Int64]](repeating: [], count: comm.size)
        for u in out.users.indices {
            let rows = Int(out.offsets[u])..<Int(out.offsets[u + 1])
            var msg: [Int64] = [out.users[u], Int64(rows.count)] + out.pins[rows]
            msg += out.channels[rows].map { Int64($0) }
            msg += out.channelRanks[rows.lowerBound * w..<rows.upperBound * w].map { Int64($0) }
            outgoing[Sharding.owner(out.users[u], ranks: comm.size)] += msg
        }
        let (received, _) = try comm.alltoallv(outgoing.flatMap { $0 }, sendCounts: outgoing.map(\.count))
        out = Candidates(channelNames: names)
        var i = 0
        while i < received.count {
            let n = Int(received[i + 1])
            out.users.append(received[i])
            out.pins += received[(i + 2)..<(i + 2 + n)]
            out.channels += received[(i + 2 + n)..<(i + 2 + 2 * n)].map { UInt8($0) }
            out.channelRanks += received[(i + 2 + 2 * n)..<(i + 2 + 2 * n + n * w)].map { Int32($0) }
            out.offsets.append(Int64(out.pins.count))
            i += 2 + 2 * n + n * w
        }
        return out
    }
}

/// This rank's users' candidates (the users `Candidates.readMine` gives this rank), their rows
/// read when asked: when the run has one shard per rank, rank r keeps shard r open and holds only
/// its users and offsets, reading a round's rows per request (memory: one round); otherwise every
/// row is read and routed at once (`readMine`).
public final class CandidateSource {
    public let channelNames: [String]
    /// This rank's users, in row order.
    public let users: [Int64]
    let offsets: [Int64]
    let file: H5File?
    let all: Candidates?

    /// Opens the candidates run at `root` (collective).
    ///
    /// - Throws: `ArtifactError` naming the shard when its offsets, pins, channels or ranks disagree.
    public init(root: URL, comm: Communicator) throws {
        let paths = try PublishedRun.open(root: root).paths(of: "candidates")
        guard paths.count == comm.size else {
            let c = try Candidates.readMine(root: root, comm: comm)
            channelNames = c.channelNames
            users = c.users
            offsets = c.offsets
            file = nil
            all = c
            return
        }
        let path = paths[comm.rank]
        let f = try H5File(path: path, mode: .read)
        channelNames = try f.root.stringAttribute("channel_names").split(separator: ",").map(String.init)
        users = try f.root.read("user_id", as: Int64.self)
        offsets = try f.root.read("offsets", as: Int64.self)
        let n = try f.root.dataset("pin_id").rowCount
        guard offsets.count == users.count + 1, offsets.last == Int64(n),
            try f.root.dataset("channels").rowCount == n,
            try f.root.dataset("channel_rank").shape == [n, channelNames.count]
        else {
            throw ArtifactError(
                file: path, message: "inconsistent candidates: offsets, pins, channels or ranks disagree")
        }
        file = f
        all = nil
    }

    /// The candidates of the users at `indices` (into `users`), in that order.
    public func rows(_ indices: [Int]) throws -> Candidates {
        var out = Candidates(channelNames: channelNames)
        if let all {
            for i in indices { out.appendUser(i, of: all) }
            return out
        }
        guard let file else { return out }
        var at = 0
        while at < indices.count {
            // A run of consecutive users is one read per column.
            var end = at + 1
            while end < indices.count && indices[end] == indices[end - 1] + 1 { end += 1 }
            let first = indices[at], last = indices[end - 1]
            let rows = Int(offsets[first])..<Int(offsets[last + 1])
            var block = Candidates(channelNames: channelNames)
            block.users = Array(users[first...last])
            block.offsets = offsets[first...(last + 1)].map { $0 - offsets[first] }
            if !rows.isEmpty {
                block.pins = try file.root.dataset("pin_id").readRows(rows, as: Int64.self)
                block.channels = try file.root.dataset("channels").readRows(rows, as: UInt8.self)
                block.channelRanks = try file.root.dataset("channel_rank").readRows(rows, as: Int32.self)
            }
            for u in block.users.indices { out.appendUser(u, of: block) }
            at = end
        }
        return out
    }
}

/// The cold-start lists of a feeds run: what a user without a precomputed feed is shown, by
/// segment (`AudienceSegment`), best first. Artifact `cold_start`, one file `cold_start/cold_start.h5`:
/// `segment` int64 (m), `offsets` int64 (m + 1), `pin_id` int64 (segment i's list being rows
/// `offsets[i] ..< offsets[i + 1]`).
public enum ColdStartLists {
    /// Writes the trending channel's segment lists and its overall list (rank 0 only; every rank
    /// calls it, then commit).
    public static func write(_ trending: TrendingChannel, to run: RunWriter, isRoot: Bool) throws {
        guard isRoot else { return }
        let path = try run.filePath(artifact: "cold_start", name: "cold_start.h5")
        var segments: [Int64] = [AudienceSegment.everyone], offsets: [Int64] = [0, Int64(trending.overall.count)]
        var pins = trending.overall
        for key in trending.bySegment.keys.sorted() {
            segments.append(key)
            pins += trending.bySegment[key]!
            offsets.append(Int64(pins.count))
        }
        do {
            let f = try H5File(path: path, mode: .create)
            try f.root.write("segment", segments)
            try f.root.write("offsets", offsets)
            try f.root.write("pin_id", pins)
            try f.flush()
        }
        try run.record(artifact: "cold_start", path: path, rows: segments.count)
    }
}

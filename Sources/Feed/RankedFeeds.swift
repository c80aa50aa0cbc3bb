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
        for slot in 0..<k {
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
        if r.ids.count == r.pins.count * f, r.content.count == r.pins.count * d {
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

    /// Writes this rank's shard into `run` and records it.
    public func write(to run: RunWriter, attributes: [String: String], cutMs: Int64) throws {
        let path = try run.shardPath(artifact: "feeds")
        do {
            let f = try H5File(path: path, mode: .create)
            let n = users.count
            try f.root.write("user_id", users)
            try f.root.write("pin_id", feedPins, shape: [n, k])
            try f.root.write("score", feedScore, shape: [n, k])
            try f.root.write("p_save", feedSave, shape: [n, k])
            try f.root.write("p_closeup", feedCloseup, shape: [n, k])
            try f.root.write("channels", feedChannels, shape: [n, k])
            // The feed pins' ranker features, for the serving shard's online re-scoring.
            let nf = FeedFeatures.fieldNames.count, nd = FeedFeatures.denseNames.count
            if feedIDs.count == n * k * nf, feedContent.count == n * k * contentWidth {
                let features = try f.root.createGroup("features")
                try features.write("ids", feedIDs, shape: [n, k, nf])
                try features.write("dense", feedDense, shape: [n, k, nd])
                try features.write("content", feedContent, shape: [n, k, contentWidth])
            }
            let g = try f.root.createGroup("ranked")
            try g.write("offsets", offsets)
            try g.write("pin_id", pins)
            try g.write("score", score)
            try g.write("p_save", pSave)
            try g.write("p_closeup", pCloseup)
            try g.write("channels", channels)
            if rankedIDs.count == pins.count * nf, content.count == contentPins.count * contentWidth, contentWidth > 0 {
                try g.write("ids", rankedIDs, shape: [pins.count, nf])
                try g.write("dense", rankedDense, shape: [pins.count, nd])
                try g.write("content_pin_id", contentPins)
                try g.write("content", content, shape: [contentPins.count, contentWidth])
            }
            try f.root.setAttribute("k", Int64(k))
            try f.root.setAttribute("cut_ms", cutMs)
            for (key, value) in attributes.sorted(by: { $0.key < $1.key }) { try f.root.setAttribute(key, value) }
            try f.flush()
        }
        try run.record(artifact: "feeds", path: path, rows: users.count)
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

import Artifacts
import EventData
import Foundation
import RankerInference

/// What a ranked feed (`mosaic feed rank`) stores about each pin of a user's feed.
public struct FeedItem: Sendable, Codable, Equatable {
    public var pin: Int64
    /// The weighted score and the calibrated probabilities of the ranker.
    public var score: Float, p_save: Float, p_closeup: Float
    /// The retrieval channels that proposed the pin.
    public var channels: [String]

    public init(pin: Int64, score: Float, p_save: Float, p_closeup: Float, channels: [String]) {
        self.pin = pin
        self.score = score
        self.p_save = p_save
        self.p_closeup = p_closeup
        self.channels = channels
    }
}

/// The feeds one serving shard answers for: the users with `user mod shards == shard` of a
/// published feeds run (`mosaic feed precompute`), and the content embeddings and categories of
/// the pins in those feeds (for the session re-rank). Every feeds file is streamed and only this
/// shard's rows are kept, so memory is proportional to the shard's users.
public struct FeedStore: Sendable {
    /// This shard's users → their precomputed feed (pin ids, best first, no padding).
    public let feeds: [Int64: [Int64]]
    /// With a ranked feeds run: each user's feed items (aligned with `feeds`), else empty.
    public var items: [Int64: [FeedItem]] = [:]
    /// With a ranked feeds run that stores them: each user's candidates for the online
    /// re-scoring, best first — the run's ranked candidates (up to `feed rank --keep`, 500)
    /// when it stores their features (`/ranked/ids`), else the feed's pins — and their ranker
    /// features (`features`, aligned).
    public var candidates: [Int64: [FeedItem]] = [:]
    public var features: [Int64: StoredFeatures] = [:]
    /// The night's ranker (`--ranker`), loaded with the run; nil: the stored ranking is served
    /// with the session re-rank only.
    public var ranker: OnlineRanker? = nil
    /// With a ranked feeds run: the cold-start lists by segment (−1: everyone; country;
    /// country and device, keyed as `coldStartSegment`), best first.
    public var coldStart: [Int64: [Int64]] = [:]

    /// The key of a cold-start segment (`AudienceSegment`, as the batch jobs write it).
    public static func coldStartSegment(country: Int32, device: UInt8? = nil) -> Int64 {
        AudienceSegment.key(country: country, device: device)
    }

    /// The cold-start feed of a user of `country` (packed code) on `device`: the segment's
    /// list, topped up from the country's, then everyone's; empty without cold-start lists.
    public func coldStartFeed(country: Int32?, device: UInt8?, k: Int) -> [Int64] {
        AudienceSegment.feed(country: country, device: device, k: k) { coldStart[$0] }
    }

    /// Content embedding (d values) and category of every pin in this shard's feeds.
    public let embeddings: [Int64: [Float]], categories: [Int64: Int32]
    public let d: Int
    /// The published feeds run and the dataset run it was built from.
    public let runID: String, sourceRun: String
    public let shard: Int, shards: Int
    /// The published run's folder (symlinks resolved), as the reload watcher compares it with
    /// the feeds' `current` pointer.
    public var runDirectory = ""

    public init(
        feeds: [Int64: [Int64]], embeddings: [Int64: [Float]], categories: [Int64: Int32], d: Int, runID: String,
        sourceRun: String, shard: Int = 0, shards: Int = 1
    ) {
        self.feeds = feeds
        self.embeddings = embeddings
        self.categories = categories
        self.d = d
        self.runID = runID
        self.sourceRun = sourceRun
        self.shard = shard
        self.shards = shards
    }

    /// Whether `user` belongs to this shard.
    public func owns(_ user: Int64) -> Bool { Int(user.magnitude % UInt64(shards)) == shard }

    /// Loads shard `shard` of `shards` from the feeds run at `feeds` (its `current` run) and the
    /// pins of its feeds from the dataset at `world`. Checks the manifest (every file present with
    /// its recorded size), the shapes of the feeds, and with `verifyChecksums` every file's
    /// checksum recorded in the manifest.
    public static func load(
        feeds: URL, world: URL, shard: Int = 0, shards: Int = 1, verifyChecksums: Bool = false
    ) throws -> FeedStore {
        guard shards >= 1, (0..<shards).contains(shard) else {
            throw ArtifactError(file: feeds.path, message: "shard \(shard) of \(shards): expected 0 ≤ shard < shards")
        }
        let run = try PublishedRun.open(root: feeds)
        if verifyChecksums { try run.verifyChecksums() }
        guard run.manifest.artifact("feeds") != nil else {
            throw ArtifactError(file: run.directory.path, message: "run \(run.manifest.runID) has no feeds artifact")
        }
        var byUser: [Int64: [Int64]] = [:], items: [Int64: [FeedItem]] = [:]
        var features: [Int64: StoredFeatures] = [:], candidates: [Int64: [FeedItem]] = [:]
        var source = ""
        for path in try run.paths(of: "feeds") {
            let file = try H5File(path: path, mode: .read)
            source = (try? file.root.stringAttribute("source_run")) ?? source
            let users = try file.root.read("user_id", as: Int64.self)
            let pins = try file.root.dataset("pin_id", of: Int64.self, shape: [nil, nil])
            let k = pins.shape.count == 2 ? pins.shape[1] : 0
            let values = try pins.read(as: Int64.self)
            guard values.count == users.count * k else {
                throw ArtifactError(
                    file: path, message: "pin_id holds \(values.count) ids for \(users.count) users × \(k)")
            }
            for (i, u) in users.enumerated() where Int(u.magnitude % UInt64(shards)) == shard {
                byUser[u] = values[i * k..<(i + 1) * k].filter { $0 >= 0 }
            }
            // A ranked feed (`mosaic feed rank`) also stores each pin's score, probabilities, channels.
            guard file.root.contains("score"), file.root.contains("channels") else { continue }
            let score = try file.root.read("score", as: Float.self), save = try file.root.read("p_save", as: Float.self)
            let closeup = try file.root.read("p_closeup", as: Float.self)
            let masks = try file.root.read("channels", as: UInt8.self)
            let names = try file.root.stringAttribute("channel_names").split(separator: ",").map(String.init)
            guard score.count == values.count, save.count == values.count, closeup.count == values.count,
                masks.count == values.count
            else {
                throw ArtifactError(
                    file: path, message: "score, p_save, p_closeup or channels differ from pin_id in shape")
            }
            let nf = FeedFeatures.fieldNames.count, nd = FeedFeatures.denseNames.count
            let mask = { (m: UInt8) in names.indices.filter { m & (1 << $0) != 0 }.map { names[$0] } }
            if file.root.contains("ranked"), try file.root.group("ranked").contains("ids") {
                // The ranked candidates (up to 500 per user) with their features: what is re-scored.
                let g = try file.root.group("ranked")
                let offsets = try g.read("offsets", as: Int64.self), rpins = try g.read("pin_id", as: Int64.self)
                let rscore = try g.read("score", as: Float.self), rsave = try g.read("p_save", as: Float.self)
                let rcloseup = try g.read("p_closeup", as: Float.self)
                let rmask = try g.read("channels", as: UInt8.self)
                let ids = try g.read("ids", as: Int64.self), dense = try g.read("dense", as: Float.self)
                let cpins = try g.read("content_pin_id", as: Int64.self)
                let content = try g.read("content", as: Float.self)
                let rows = rpins.count
                guard offsets.count == users.count + 1, offsets.last == Int64(rows), rscore.count == rows,
                    rsave.count == rows, rcloseup.count == rows, rmask.count == rows, ids.count == rows * nf,
                    dense.count == rows * nd, cpins.isEmpty || content.count % cpins.count == 0
                else { throw ArtifactError(file: path, object: "/ranked", message: "shapes disagree") }
                let cw = cpins.isEmpty ? 0 : content.count / cpins.count
                var crow: [Int64: Int] = [:]
                for (i, p) in cpins.enumerated() { crow[p] = i }
                for (i, u) in users.enumerated() where Int(u.magnitude % UInt64(shards)) == shard {
                    var stored = StoredFeatures(contentWidth: cw)
                    var list: [FeedItem] = []
                    for j in Int(offsets[i])..<Int(offsets[i + 1]) {
                        guard let c = crow[rpins[j]] else {
                            throw ArtifactError(
                                file: path, object: "/ranked", message: "pin \(rpins[j]) has no content row")
                        }
                        stored.ids += ids[j * nf..<(j + 1) * nf]
                        stored.dense += dense[j * nd..<(j + 1) * nd]
                        stored.content += content[c * cw..<(c + 1) * cw]
                        list.append(
                            FeedItem(
                                pin: rpins[j], score: rscore[j], p_save: rsave[j], p_closeup: rcloseup[j],
                                channels: mask(rmask[j])))
                    }
                    features[u] = stored
                    candidates[u] = list
                }
            } else if file.root.contains("features"), !users.isEmpty, k > 0 {
                let g = try file.root.group("features")
                let ids = try g.read("ids", as: Int64.self), dense = try g.read("dense", as: Float.self)
                let content = try g.read("content", as: Float.self)
                let slots = users.count * k
                guard ids.count == slots * nf, dense.count == slots * nd, content.count % slots == 0 else {
                    throw ArtifactError(file: path, object: "/features", message: "shapes differ from pin_id")
                }
                let cw = content.count / slots
                for (i, u) in users.enumerated() where Int(u.magnitude % UInt64(shards)) == shard {
                    var stored = StoredFeatures(contentWidth: cw)
                    for j in i * k..<(i + 1) * k where values[j] >= 0 {
                        stored.ids += ids[j * nf..<(j + 1) * nf]
                        stored.dense += dense[j * nd..<(j + 1) * nd]
                        stored.content += content[j * cw..<(j + 1) * cw]
                    }
                    features[u] = stored
                }
            }
            for (i, u) in users.enumerated() where Int(u.magnitude % UInt64(shards)) == shard {
                items[u] = (i * k..<(i + 1) * k).filter { values[$0] >= 0 }.map { j in
                    FeedItem(
                        pin: values[j], score: score[j], p_save: save[j], p_closeup: closeup[j],
                        channels: mask(masks[j]))
                }
                if candidates[u] == nil, features[u] != nil { candidates[u] = items[u] }
            }
        }
        var wanted = Set<Int64>()
        for feed in byUser.values { wanted.formUnion(feed) }
        for list in candidates.values { wanted.formUnion(list.lazy.map(\.pin)) }
        var coldStart: [Int64: [Int64]] = [:]
        if run.manifest.artifact("cold_start") != nil {
            let path = try run.paths(of: "cold_start")[0]
            let f = try H5File(path: path, mode: .read)
            let segments = try f.root.read("segment", as: Int64.self),
                offsets = try f.root.read("offsets", as: Int64.self)
            let pins = try f.root.read("pin_id", as: Int64.self)
            guard offsets.count == segments.count + 1, offsets.last == Int64(pins.count) else {
                throw ArtifactError(file: path, message: "segment, offsets and pin_id disagree")
            }
            for (i, key) in segments.enumerated() {
                coldStart[key] = Array(pins[Int(offsets[i])..<Int(offsets[i + 1])])
            }
            for list in coldStart.values { wanted.formUnion(list) }
        }
        let reader = try DatasetReader(root: world)
        var embeddings: [Int64: [Float]] = [:], categories: [Int64: Int32] = [:]
        var d = 0
        for path in try reader.shards("pins") {
            let t = try DatasetReader.readShard(path, entity: "pins")
            let ids = t.i64("pin_id"), cats = t.int32["category"]!, emb = t.float32["embedding"]!
            guard t.count > 0 else { continue }
            d = emb.count / t.count
            for (i, p) in ids.enumerated() where wanted.contains(p) {
                embeddings[p] = Array(emb[i * d..<(i + 1) * d])
                categories[p] = cats[i]
            }
        }
        var store = FeedStore(
            feeds: byUser, embeddings: embeddings, categories: categories, d: d, runID: run.manifest.runID,
            sourceRun: source, shard: shard, shards: shards)
        store.items = items
        store.features = features
        store.candidates = candidates
        store.coldStart = coldStart
        store.runDirectory = run.directory.path
        return store
    }
}

/// One user's feed pins' ranker features as `feed rank` computed them (aligned with the feed's
/// items): `FeedFeatures` field ids, dense values and content vectors, row-major.
public struct StoredFeatures: Sendable, Equatable {
    public var ids: [Int64] = [], dense: [Float] = [], content: [Float] = []
    public let contentWidth: Int

    public init(contentWidth: Int) { self.contentWidth = contentWidth }

    /// Rows stored.
    public var count: Int { ids.count / FeedFeatures.fieldNames.count }

    /// The rows as the ranker's input (position-free).
    public func data() -> CTRData {
        var d = FeedFeatures.emptyData(contentWidth: contentWidth)
        d.ids = ids
        d.dense = dense
        d.content = content
        d.labels = [[Float](repeating: 0, count: count), [Float](repeating: 0, count: count)]
        return d
    }
}

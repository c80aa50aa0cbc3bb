import Artifacts
import Collective
import EventData
import Events
import Foundation
import Index
import Models

/// The content retrieval channel: pins whose content embedding lies near what a user engaged
/// with. Pins stay sharded: each rank holds the pins of its dataset shards and one shard of the
/// IVF index; lookups and searches are collective.
public struct ContentChannel: Sendable {
    /// This rank's pins: their embeddings, tagged with their categories.
    public let table: PinVectorTable
    /// The distributed IVF-Flat index over every pin's embedding (this rank's shard of lists).
    public let index: IVFIndex
    /// The model that produced the embeddings (PinSage's version; empty for content embeddings).
    public var embeddingVersion = ""

    /// This rank's pins, their categories and embeddings (`ids.count × d`, row-major).
    public var ids: [Int64] { table.ids }
    public var categories: [Int32] { table.tags }
    public var embeddings: [Float] { table.vectors }
    /// Embedding dimension.
    public var d: Int { table.d }

    /// Reads this rank's pin shards of `world` and builds the index (collective). Every pin's
    /// embedding and category is held (lookups of engaged pins); the index holds only the pins
    /// created in `created` (default: all): pins created before the cut, or the fresh ones.
    ///
    /// - Parameter nlist: inverted lists; nil = about √(indexed pins), at least 1.
    public static func build(
        world: DatasetReader, created: Range<Int64> = Int64.min..<Int64.max, nlist: Int? = nil, seed: UInt64 = 1234,
        comm: Communicator
    ) throws -> ContentChannel {
        var ids: [Int64] = [], categories: [Int32] = [], embeddings: [Float] = [], createdAt: [Int64] = []
        var d = 0
        for path in try world.myShards("pins", comm: comm) {
            let t = try DatasetReader.readShard(path, entity: "pins")
            ids += t.i64("pin_id")
            categories += t.int32["category"]!
            embeddings += t.float32["embedding"]!
            createdAt += t.i64("created_at_ms")
            d = t.count > 0 ? t.float32["embedding"]!.count / t.count : d
        }
        d = Int(try comm.allreduce(Int64(d), op: .max))
        let indexed = ids.indices.filter { created.contains(createdAt[$0]) }
        let total = Int(try comm.allreduce(Int64(indexed.count)))
        guard d > 0, total > 0 else {
            throw ArtifactError(
                file: world.run.directory.path, object: "pins",
                message: "no pins with embeddings created in the window \(created) in the dataset")
        }
        let lists = nlist ?? max(1, Int(Double(total).squareRoot()))
        var kmeans = KMeansParameters(seed: seed, initialization: .random)
        kmeans.iterations = 15
        var index = try IVFIndex(d: d, parameters: IVFParameters(nlist: min(lists, total), metric: .l2, kmeans: kmeans))
        var x: [Float] = []
        x.reserveCapacity(indexed.count * d)
        for i in indexed { x += embeddings[i * d..<(i + 1) * d] }
        try index.train(x, comm: comm)
        try index.add(x, ids: indexed.map { ids[$0] }, comm: comm)
        return ContentChannel(
            table: PinVectorTable(ids: ids, vectors: embeddings, d: d, tags: categories), index: index)
    }

    /// An embedding channel over the night's PinSage vectors: this rank's shards of the
    /// embeddings run at `embeddings` (`mosaic pinsage embed`), its share of the lists of the
    /// index run at `index` (`mosaic index build --embeddings … --out …`), and the pins'
    /// categories from `content` (collective).
    ///
    /// - Throws: `ArtifactError` naming the file when the index was built over another
    ///   embedding model or has another dimension than the embeddings.
    public static func load(embeddings: URL, index: URL, categoriesFrom content: ContentChannel, comm: Communicator)
        throws -> ContentChannel
    {
        let vectors = try PinEmbeddings.readMine(root: embeddings, comm: comm)
        let d = Int(try comm.allreduce(Int64(vectors.d), op: .max))
        let version = try comm.broadcast(string: vectors.modelVersion)
        let indexRun = try PublishedRun.open(root: index)
        let path = try indexRun.paths(of: "index")[0]
        if let built = indexRun.manifest.config["model_version"], !version.isEmpty, built != version {
            throw ArtifactError(
                file: path,
                message:
                    "index built over embedding model '\(built)', the embeddings at \(embeddings.path) are model '\(version)'; rebuild the index with `mosaic index build --embeddings`"
            )
        }
        let ivf = try IVFIndex.load(from: path, comm: comm)
        guard ivf.d == d else {
            throw ArtifactError(
                file: path, message: "index of dimension \(ivf.d), the embeddings at \(embeddings.path) have \(d)")
        }
        let categories = try content.lookupDistinct(vectors.ids, comm: comm).categories
        return ContentChannel(
            table: PinVectorTable(ids: vectors.ids, vectors: vectors.vectors, d: d, tags: categories), index: ivf,
            embeddingVersion: version)
    }

    /// Embeddings `(pins.count × d)` and categories of `pins`, whichever rank holds them
    /// (collective; every rank passes the same `pins`). Unknown pins get zeros and category -1.
    public func lookup(_ pins: [Int64], comm: Communicator) throws -> (embeddings: [Float], categories: [Int32]) {
        var e = [Float](repeating: 0, count: pins.count * d)
        var c = [Int32](repeating: -1, count: pins.count)
        for (i, p) in pins.enumerated() {
            guard let r = table.localRow(p) else { continue }
            for j in 0..<d { e[i * d + j] = table.vectors[r * d + j] }
            c[i] = table.tags[r]
        }
        try comm.allreduce(&e)  // each pin lives on exactly one rank: the sum is a gather
        try comm.allreduce(&c, op: .max)
        return (e, c)
    }

    /// For each of `queries` (nq × d), the `k` pins nearest to it that are not in `exclude`,
    /// best first, with squared L2 distances (collective; same arguments on every rank).
    public func retrieve(queries: [Float], k: Int, exclude: Set<Int64>, nprobe: Int = 16, comm: Communicator) throws
        -> [[(pin: Int64, distance: Float)]]
    {
        let nq = queries.count / d
        let want = k + exclude.count
        let (dist, labels) = try index.search(
            queries, k: want, parameters: SearchParameters(nprobe: nprobe), comm: comm)
        return (0..<nq).map { q in
            var out: [(pin: Int64, distance: Float)] = []
            for i in (q * want)..<((q + 1) * want) where labels[i] >= 0 && !exclude.contains(labels[i]) {
                out.append((labels[i], dist[i]))
                if out.count == k { break }
            }
            return out
        }
    }

    /// A multi-interest feed: one query per interest (the mean embedding of the engaged pins
    /// of each of the user's `interests` most engaged categories), feed slots shared in
    /// proportion to engagement and filled round-robin, duplicates and `exclude` left out.
    /// Collective. Returns the feed with the interest (category) each pin was retrieved for.
    public func multiInterestFeed(
        engaged: [Int64], k: Int, interests: Int = 5, exclude: Set<Int64>, nprobe: Int = 16, comm: Communicator
    ) throws -> [(pin: Int64, distance: Float, interest: Int32)] {
        let (e, cats) = try lookup(engaged, comm: comm)
        let top = Self.interests(embeddings: e, categories: cats, d: d, count: interests)
        guard !top.categories.isEmpty else { return [] }
        let queries = top.queries
        let lists = try retrieve(queries: queries, k: k, exclude: exclude, nprobe: nprobe, comm: comm)
        return Self.interleave(lists: lists, engagement: top.engagement, k: k, exclude: [])
            .map { ($0.pin, $0.distance, top.categories[$0.list]) }
    }

    /// Interests of a user: up to `count` categories with the most engaged pins (ties: smaller
    /// category) and, per interest, the mean embedding of its engaged pins. `embeddings`
    /// (engaged.count × d) and `categories` are the engaged pins'. Returns (categories,
    /// engagement counts, queries (interests × d)).
    public static func interests(
        embeddings: [Float], categories: [Int32], d: Int, count: Int
    ) -> (categories: [Int32], engagement: [Int], queries: [Float]) {
        var members: [Int32: [Int]] = [:]
        for (i, c) in categories.enumerated() where c >= 0 { members[c, default: []].append(i) }
        let top = members.sorted { ($0.value.count, -$0.key) > ($1.value.count, -$1.key) }.prefix(max(1, count))
        var queries = [Float](repeating: 0, count: top.count * d)
        for (q, (_, rows)) in top.enumerated() {
            for r in rows { for j in 0..<d { queries[q * d + j] += embeddings[r * d + j] / Float(rows.count) } }
        }
        return (top.map(\.key), top.map { $0.value.count }, queries)
    }

    /// Interests as clusters of the engaged pins' vectors, as PinnerSage does: up to `count`
    /// clusters of `embeddings` (n × d, most recent last) by k-means (10 iterations) seeded
    /// with the most recent vector and then, one at a time, the vector farthest from the seeds
    /// (ties to the more recent) while it lies farther than half the rows' mean squared norm
    /// (for unit vectors: a cosine below 0.75), so one interest stays one cluster; each
    /// interest's query is its medoid (the member nearest to the
    /// cluster mean) and its weight the cluster's size. Zero vectors (unknown pins) are left out.
    /// Returns the interests largest first (ties to the earlier seed) in `interests`' shape, the
    /// cluster index standing in for the category.
    public static func clusteredInterests(embeddings: [Float], d: Int, count: Int) -> (
        categories: [Int32], engagement: [Int], queries: [Float]
    ) {
        let rows = (0..<(embeddings.count / max(d, 1))).filter { r in
            (0..<d).contains { embeddings[r * d + $0] != 0 }
        }
        guard !rows.isEmpty, count >= 1 else { return ([], [], []) }
        func distance(_ a: Int, _ center: [Float]) -> Float {
            var s: Float = 0
            for j in 0..<d {
                let x = embeddings[a * d + j] - center[j]
                s += x * x
            }
            return s
        }
        func vector(_ r: Int) -> [Float] { Array(embeddings[r * d..<(r + 1) * d]) }
        var centers = [vector(rows.last!)]
        let separation =
            rows.reduce(Float(0)) { sum, r in
                sum + (0..<d).reduce(Float(0)) { $0 + embeddings[r * d + $1] * embeddings[r * d + $1] }
            } / Float(rows.count) / 2
        while centers.count < min(count, rows.count) {
            var best = -1, far: Float = -1
            for r in rows.reversed() {
                let m = centers.map { distance(r, $0) }.min()!
                if m > far {
                    far = m
                    best = r
                }
            }
            guard far > separation else { break }
            centers.append(vector(best))
        }
        var assignment = [Int](repeating: 0, count: rows.count)
        for _ in 0..<10 {
            for (i, r) in rows.enumerated() {
                var best = 0, bestDistance = Float.infinity
                for (c, center) in centers.enumerated() {
                    let dd = distance(r, center)
                    if dd < bestDistance { (best, bestDistance) = (c, dd) }
                }
                assignment[i] = best
            }
            for c in centers.indices {
                let members = rows.indices.filter { assignment[$0] == c }
                guard !members.isEmpty else { continue }
                var mean = [Float](repeating: 0, count: d)
                for i in members { for j in 0..<d { mean[j] += embeddings[rows[i] * d + j] / Float(members.count) } }
                centers[c] = mean
            }
        }
        var clusters: [(seed: Int, size: Int, medoid: Int)] = []
        for c in centers.indices {
            let members = rows.indices.filter { assignment[$0] == c }
            guard !members.isEmpty else { continue }
            let medoid = members.min { (distance(rows[$0], centers[c]), -$0) < (distance(rows[$1], centers[c]), -$1) }!
            clusters.append((c, members.count, rows[medoid]))
        }
        clusters.sort { ($0.size, -$0.seed) > ($1.size, -$1.seed) }
        return (
            clusters.map { Int32($0.seed) }, clusters.map(\.size), clusters.flatMap { vector($0.medoid) }
        )
    }

    /// Merges per-interest result lists into one list of `k`: slots shared in proportion to
    /// `engagement` (largest remainder), filled round-robin, nearest first; duplicates and
    /// `exclude` left out. Returns (pin, distance, index of the list it came from).
    public static func interleave(
        lists: [[(pin: Int64, distance: Float)]], engagement: [Int], k: Int, exclude: Set<Int64>
    ) -> [(pin: Int64, distance: Float, list: Int)] {
        let total = engagement.reduce(0, +)
        guard total > 0, k > 0 else { return [] }
        var quota = engagement.map { k * $0 / total }
        var order = Array(engagement.indices).sorted {
            (k * engagement[$0] % total, -$0) > (k * engagement[$1] % total, -$1)
        }
        while quota.reduce(0, +) < k, !order.isEmpty { quota[order.removeFirst()] += 1 }
        var out: [(pin: Int64, distance: Float, list: Int)] = []
        var taken = Set<Int64>(minimumCapacity: k)  // besides `exclude` (not copied)
        var cursor = [Int](repeating: 0, count: lists.count)
        var progress = true
        while out.count < k && progress {
            progress = false
            for q in lists.indices where quota[q] > 0 && out.count < k {
                while cursor[q] < lists[q].count,
                    taken.contains(lists[q][cursor[q]].pin) || exclude.contains(lists[q][cursor[q]].pin)
                {
                    cursor[q] += 1
                }
                guard cursor[q] < lists[q].count else { continue }
                let item = lists[q][cursor[q]]
                out.append((item.pin, item.distance, q))
                taken.insert(item.pin)
                quota[q] -= 1
                progress = true
            }
        }
        return out
    }

    /// Embeddings `(pins.count × d)` and categories of this rank's own `pins`
    /// (`PinVectorTable.lookupDistinct`). Collective.
    public func lookupDistinct(_ pins: [Int64], comm: Communicator) throws -> (embeddings: [Float], categories: [Int32])
    {
        let (v, t, _) = try table.lookupDistinct(pins, comm: comm)
        return (v, t)
    }
}

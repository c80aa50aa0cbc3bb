import Collective
import Foundation
import Linalg

// Glossary: d = dimension, nlist = inverted lists, m = PQ sub-quantisers, nq = queries,
// k = results per query, nprobe = lists visited per query, s = vectors in one list,
// p = ranks (index shards).

/// Parameters of an IVF index (faiss's `IndexIVFFlat` / `IndexIVFPQ` constructor arguments).
public struct IVFParameters: Sendable, Equatable {
    /// Inverted lists = coarse centroids (default 1024).
    public var nlist: Int
    /// L2 (default) or inner product.
    public var metric: Metric
    /// 0 (default) for IVF-Flat; otherwise IVF-PQ with `pqM` sub-quantisers of 8 bits that
    /// encode residuals to the coarse centroid (`pqM` must divide d).
    public var pqM: Int
    /// IVF-PQ only: also keep the full vectors in the lists, for exact re-ranking
    /// (`SearchParameters.refineFactor`). Default false.
    public var keepVectors: Bool
    /// Coarse k-means (default: 25 iterations, random init as faiss, seed 1234).
    public var kmeans: KMeansParameters
    /// PQ k-means per sub-quantiser (default: 25 iterations, random init, seed 4321, at most
    /// 256 × 256 training residuals).
    public var pqKMeans: KMeansParameters

    public init(
        nlist: Int = 1024, metric: Metric = .l2, pqM: Int = 0, keepVectors: Bool = false,
        kmeans: KMeansParameters = KMeansParameters(initialization: .random),
        pqKMeans: KMeansParameters = KMeansParameters(seed: 4321, initialization: .random)
    ) {
        self.nlist = nlist
        self.metric = metric
        self.pqM = pqM
        self.keepVectors = keepVectors
        self.kmeans = kmeans
        self.pqKMeans = pqKMeans
    }
}

/// Parameters of one search call (faiss's `SearchParametersIVF`).
public struct SearchParameters: Sendable, Equatable {
    /// Inverted lists visited per query (default 8; capped at nlist).
    public var nprobe: Int
    /// IVF-PQ with kept vectors: re-rank the best `k * refineFactor` ADC candidates with exact
    /// distances (default 0 = off).
    public var refineFactor: Int
    /// Threads over query blocks (default 1). BLAS runs single-threaded inside them.
    public var threads: Int
    /// Queries per block (default 1024): the unit of coarse quantisation and list grouping.
    /// Within a block the (query, list) pairs are grouped by list, so a list is read from
    /// memory once for all the block's queries that probe it; larger blocks reuse more, at
    /// O(block × (nprobe + k)) scratch, plus block × m × 256 floats of ADC tables for IVF-PQ.
    public var queryBlock: Int

    public init(nprobe: Int = 8, refineFactor: Int = 0, threads: Int = 1, queryBlock: Int = 1024) {
        self.nprobe = nprobe
        self.refineFactor = refineFactor
        self.threads = threads
        self.queryBlock = queryBlock
    }
}

/// One inverted list: parallel arrays over its s entries.
struct InvertedList: Sendable {
    var ids: [Int64] = []
    /// (s, d) full vectors (IVF-Flat, or IVF-PQ with `keepVectors`).
    var vectors: [Float] = []
    /// (s) squared norms of `vectors` (L2 scans use ‖q‖² − 2 q·x + ‖x‖²).
    var norms: [Float] = []
    /// (s, m) PQ codes.
    var codes: [UInt8] = []
    var count: Int { ids.count }
}

/// An inverted-file index over d-dimensional vectors: IVF-Flat (full vectors in the lists) or
/// IVF-PQ (product-quantised residuals, asymmetric distance computation, optional exact
/// re-ranking). Follows faiss's shape: `train(x)`, `add(x, ids)`, `search(queries, k)`.
///
/// Distributed: under MPI each rank is one *shard* that holds a contiguous range of list ids
/// (`ownedLists`, balanced by vector count). `train` and `add` are collective: every rank
/// passes its own rows and vectors travel to the owner of their list (alltoallv). `search`
/// with a communicator merges the shards' top-k. Without mpirun the world has one rank and the
/// shard is the whole index.
public struct IVFIndex: Sendable {
    /// Dimension.
    public let d: Int
    public let parameters: IVFParameters
    public var nlist: Int { parameters.nlist }
    public var metric: Metric { parameters.metric }
    /// PQ sub-quantisers (0 for IVF-Flat).
    public var m: Int { parameters.pqM }
    /// Whether lists hold full vectors (IVF-Flat, or IVF-PQ with `keepVectors`).
    public var storesVectors: Bool { parameters.pqM == 0 || parameters.keepVectors }

    /// Coarse centroids, (nlist, d).
    public internal(set) var centroids: [Float] = []
    var centroidNorms: [Float] = []
    /// The coarse centroids packed for the fused nearest-centroid kernel (1-NN assignment).
    var packedCentroids: PackedCentroids?
    /// The product quantiser of residuals (IVF-PQ).
    public internal(set) var pq: ProductQuantizer?
    /// L2 IVF-PQ: (nlist, m, 256) = ‖p‖² + 2 c_l·p, the list-dependent part of the ADC table.
    var pqListTerm: [Float] = []
    public internal(set) var isTrained = false

    /// Shard boundaries: shard r owns lists `listBounds[r] ..< listBounds[r + 1]`; nil until the
    /// first add (they are balanced on the first batch's list sizes).
    public internal(set) var listBounds: [Int]?
    /// This shard's index among `shardCount`.
    public internal(set) var shard = 0
    public internal(set) var shardCount = 1
    var lists: [InvertedList]
    /// id → (list << 32 | position), for removal without a scan.
    var idMap: [Int64: UInt64] = [:]

    /// An empty, untrained index.
    public init(d: Int, parameters: IVFParameters = IVFParameters()) throws {
        guard d > 0 else { throw IndexError("IVF: d must be positive, found \(d)") }
        guard parameters.nlist > 0, parameters.nlist < Int(Int32.max) else {
            throw IndexError("IVF: nlist must be in 1 ..< 2^31, found \(parameters.nlist)")
        }
        if parameters.pqM > 0 {
            guard d % parameters.pqM == 0 else {
                throw IndexError("IVF-PQ: m (\(parameters.pqM)) must divide d (\(d))")
            }
        }
        guard parameters.pqM >= 0 else { throw IndexError("IVF-PQ: m must be ≥ 0, found \(parameters.pqM)") }
        self.d = d
        self.parameters = parameters
        lists = Array(repeating: InvertedList(), count: parameters.nlist)
    }

    /// Lists held by this shard.
    public var ownedLists: Range<Int> {
        guard let b = listBounds else { return 0..<nlist }
        return b[shard]..<b[shard + 1]
    }

    /// Vectors held by this shard.
    public var count: Int { idMap.count }

    /// Sizes of this shard's lists (0 for lists it does not own), nlist entries.
    public var listSizes: [Int] { lists.map(\.count) }

    /// Ids of list `l` in storage order (empty when not owned by this shard).
    public func ids(inList l: Int) -> [Int64] { lists[l].ids }

    /// The shard that owns list `l`.
    public func owner(of l: Int) -> Int {
        guard let b = listBounds else { return 0 }
        var lo = 0, hi = b.count - 2
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if b[mid] <= l { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    // MARK: - Train

    /// Trains the coarse quantiser (and the PQ) on this rank's rows `x`, (n, d). Collective.
    public mutating func train(_ x: [Float], comm: Communicator) throws {
        guard x.count % d == 0 else { throw IndexError("train: \(x.count) values are not rows of width d=\(d)") }
        var kp = parameters.kmeans
        kp.metric = metric
        let result = try KMeans(d: d, k: nlist, parameters: kp).train(x, comm: comm)
        try setCentroids(result.centroids)
        if m > 0 {
            // Residuals of a global sample of at most 256 × maxPointsPerCentroid rows.
            let n = x.count / d
            let counts = try comm.allgatherv([Int64(n)]).values.map(Int.init)
            let offset = counts[..<comm.rank].reduce(0, +), total = counts.reduce(0, +)
            let want = ProductQuantizer.ksub * Swift.max(1, parameters.pqKMeans.maxPointsPerCentroid)
            let sample = KMeans.sample(Swift.min(total, want), from: total, seed: parameters.pqKMeans.seed ^ 0x5EED)
            let lo = lowerBound(sample, offset), hi = lowerBound(sample, offset + n)
            var xs = [Float](repeating: 0, count: (hi - lo) * d)
            for i in lo..<hi { for j in 0..<d { xs[(i - lo) * d + j] = x[(sample[i] - offset) * d + j] } }
            let residuals = residuals(of: xs, n: hi - lo)
            var quantizer = try ProductQuantizer(d: d, m: m)
            try quantizer.train(residuals.values, parameters: parameters.pqKMeans, comm: comm)
            try setPQ(quantizer)
        }
        isTrained = true
    }

    /// Installs trained coarse centroids (nlist, d).
    mutating func setCentroids(_ c: [Float]) throws {
        guard c.count == nlist * d else {
            throw IndexError("IVF: expected \(nlist * d) centroid values, found \(c.count)")
        }
        centroids = c
        centroidNorms = Distances.squaredNorms(c, n: nlist, d: d)
        packedCentroids = PackedCentroids(c, k: nlist, d: d, metric: metric)
    }

    /// Installs a trained PQ and precomputes the list-dependent ADC term.
    mutating func setPQ(_ quantizer: ProductQuantizer) throws {
        pq = quantizer
        guard metric == .l2 else { return }
        let ksub = ProductQuantizer.ksub, ds = quantizer.dsub
        var term = [Float](repeating: 0, count: nlist * m * ksub)
        // ‖p‖² per sub-centroid, then 2 c_l·p via one gemm per sub-quantiser.
        var pNorms = [Float](repeating: 0, count: m * ksub)
        quantizer.centroids.withUnsafeBufferPointer { pc in
            pNorms.withUnsafeMutableBufferPointer { pn in
                Distances.squaredNorms(pc.baseAddress!, n: m * ksub, d: ds, lda: ds, into: pn.baseAddress!)
            }
            centroids.withUnsafeBufferPointer { cc in
                term.withUnsafeMutableBufferPointer { pt in
                    for j in 0..<m {
                        BLAS.gemm(
                            .none, .transpose, m: nlist, n: ksub, k: ds, alpha: 2, a: cc.baseAddress! + j * ds, lda: d,
                            b: pc.baseAddress! + j * ksub * ds, ldb: ds, c: pt.baseAddress! + j * ksub, ldc: m * ksub)
                    }
                }
            }
        }
        for l in 0..<nlist { for t in 0..<(m * ksub) { term[l * m * ksub + t] += pNorms[t] } }
        pqListTerm = term
    }

    /// Coarse assignment of `n` rows and their residuals x − c_list.
    func residuals(of x: [Float], n: Int) -> (values: [Float], lists: [Int64]) {
        let labels = assign(x, n: n)
        var r = x
        for i in 0..<n {
            let l = Int(labels[i])
            for j in 0..<d { r[i * d + j] -= centroids[l * d + j] }
        }
        return (r, labels)
    }

    /// The nearest list of each of `n` rows of `x` (n, d).
    func assign(_ x: [Float], n: Int) -> [Int64] {
        var labels = [Int64](repeating: 0, count: n)
        guard n > 0, let packed = packedCentroids else { return labels }
        var dist = [Float](repeating: 0, count: n)
        x.withUnsafeBufferPointer { px in
            packed.nearest(x: px.baseAddress!, n: n, ldx: d, labels: &labels, distances: &dist, exactDistances: false)
        }
        return labels
    }

    // MARK: - Add and remove

    /// Adds this rank's vectors `x` (n, d) with their `ids` (n). Collective: each vector is
    /// assigned to its nearest centroid, encoded, and sent to the shard owning that list
    /// (alltoallv). Lists keep vectors in (source rank, local order) order, i.e. global row order,
    /// whatever the rank count. Ids must be unique (the caller's contract, as in faiss): an id
    /// that arrives at a shard already holding it is skipped and reported as an error after the
    /// batch; a duplicate that lands on another shard is not detected.
    public mutating func add(_ x: [Float], ids: [Int64], comm: Communicator) throws {
        guard isTrained else { throw IndexError("add: the index is not trained") }
        let n = ids.count
        guard x.count == n * d else { throw IndexError("add: x has \(x.count) values, expected n × d = \(n) × \(d)") }
        if shardCount != comm.size || (listBounds != nil && listBounds!.count != comm.size + 1) {
            if count > 0 || listBounds != nil {
                throw IndexError("add: index has \(shardCount) shard(s) but the world has \(comm.size) rank(s)")
            }
        }
        let labels = assign(x, n: n)
        if listBounds == nil {
            var counts = [Int64](repeating: 0, count: nlist)
            for l in labels { counts[Int(l)] += 1 }
            try comm.allreduce(&counts)
            listBounds = Self.balancedBounds(counts.map(Int.init), parts: comm.size)
            shard = comm.rank
            shardCount = comm.size
        }
        var codes: [UInt8] = []
        if let pq {
            // Residuals x − c_list in cache-sized chunks, encoded as they are made.
            codes = [UInt8](repeating: 0, count: n * m)
            let packed = pq.packedSubQuantizers()
            let chunk = ProductQuantizer.encodeChunk
            let r = UnsafeMutablePointer<Float>.allocate(capacity: chunk * d)
            defer { r.deallocate() }
            x.withUnsafeBufferPointer { px in
                centroids.withUnsafeBufferPointer { pc in
                    codes.withUnsafeMutableBufferPointer { po in
                        var start = 0
                        while start < n {
                            let rows = Swift.min(chunk, n - start)
                            for i in 0..<rows {
                                let xi = px.baseAddress! + (start + i) * d
                                let ci = pc.baseAddress! + Int(labels[start + i]) * d
                                let ri = r + i * d
                                for j in 0..<d { ri[j] = xi[j] - ci[j] }
                            }
                            pq.encode(r, n: rows, into: po.baseAddress! + start * m, packed: packed)
                            start += rows
                        }
                    }
                }
            }
        }
        // Stable counting sort of rows by destination shard.
        let p = comm.size
        var sendCounts = [Int](repeating: 0, count: p)
        let dest = labels.map { owner(of: Int($0)) }
        for r in dest { sendCounts[r] += 1 }
        var cursor = exclusiveSum(sendCounts)
        var order = [Int](repeating: 0, count: n)
        for i in 0..<n {
            order[cursor[dest[i]]] = i
            cursor[dest[i]] += 1
        }
        let sendLists = order.map { labels[$0] }
        let sendIds = order.map { ids[$0] }
        let recvLists = try comm.alltoallv(sendLists, sendCounts: sendCounts).values
        let (recvIds, _) = try comm.alltoallv(sendIds, sendCounts: sendCounts)
        var recvVectors: [Float] = []
        if storesVectors {
            var send = [Float](repeating: 0, count: n * d)
            for (o, i) in order.enumerated() { for j in 0..<d { send[o * d + j] = x[i * d + j] } }
            recvVectors = try comm.alltoallv(send, sendCounts: sendCounts.map { $0 * d }).values
        }
        var recvCodes: [UInt8] = []
        if m > 0 {
            var send = [UInt8](repeating: 0, count: n * m)
            for (o, i) in order.enumerated() { for j in 0..<m { send[o * m + j] = codes[i * m + j] } }
            recvCodes = try comm.alltoallv(send, sendCounts: sendCounts.map { $0 * m }).values
        }
        // Room for the batch up front: one growth per list and one for the id map.
        var incoming = [Int](repeating: 0, count: nlist)
        for l in recvLists { incoming[Int(l)] += 1 }
        for l in 0..<nlist where incoming[l] > 0 {
            let s = lists[l].count + incoming[l]
            grow(&lists[l].ids, to: s)
            if storesVectors {
                grow(&lists[l].vectors, to: s * d)
                grow(&lists[l].norms, to: s)
            }
            if m > 0 { grow(&lists[l].codes, to: s * m) }
        }
        if idMap.capacity < idMap.count + recvIds.count {
            idMap.reserveCapacity(Swift.max(idMap.count + recvIds.count, 2 * idMap.capacity))
        }
        var duplicate: Int64?
        for i in 0..<recvIds.count {
            let l = Int(recvLists[i])
            if idMap[recvIds[i]] != nil { duplicate = recvIds[i]; continue }
            idMap[recvIds[i]] = UInt64(l) << 32 | UInt64(lists[l].count)
            lists[l].ids.append(recvIds[i])
            if storesVectors {
                recvVectors.withUnsafeBufferPointer { pv in
                    let v = pv.baseAddress! + i * d
                    lists[l].vectors.append(contentsOf: UnsafeBufferPointer(start: v, count: d))
                    lists[l].norms.append(Distances.dot(v, v, d))
                }
            }
            if m > 0 { lists[l].codes.append(contentsOf: recvCodes[(i * m)..<((i + 1) * m)]) }
        }
        let dupes = try comm.allreduce(duplicate.map { _ in Int64(1) } ?? 0)
        if dupes > 0 {
            throw IndexError(
                "add: \(dupes) rank(s) received ids already in the index (e.g. \(duplicate.map(String.init) ?? "on another rank")); those vectors were skipped"
            )
        }
    }

    /// Removes `ids` held by this shard, without scanning: each id is found through the id
    /// map and the last entry of its list moves into its slot. Returns how many were removed.
    @discardableResult
    public mutating func remove(ids: [Int64]) -> Int {
        var removed = 0
        for id in ids {
            guard let slot = idMap.removeValue(forKey: id) else { continue }
            let l = Int(slot >> 32), pos = Int(slot & 0xFFFF_FFFF)
            let last = lists[l].count - 1
            if pos != last {
                let moved = lists[l].ids[last]
                lists[l].ids[pos] = moved
                idMap[moved] = UInt64(l) << 32 | UInt64(pos)
                if storesVectors {
                    for j in 0..<d { lists[l].vectors[pos * d + j] = lists[l].vectors[last * d + j] }
                    lists[l].norms[pos] = lists[l].norms[last]
                }
                if m > 0 { for j in 0..<m { lists[l].codes[pos * m + j] = lists[l].codes[last * m + j] } }
            }
            lists[l].ids.removeLast()
            if storesVectors {
                lists[l].vectors.removeLast(d)
                lists[l].norms.removeLast()
            }
            if m > 0 { lists[l].codes.removeLast(m) }
            removed += 1
        }
        return removed
    }

    /// Removes `ids` (the same list on every rank) from whichever shards hold them. Collective;
    /// returns the global number removed.
    @discardableResult
    public mutating func remove(ids: [Int64], comm: Communicator) throws -> Int {
        Int(try comm.allreduce(Int64(remove(ids: ids))))
    }

    /// Puts every list of this shard in ascending id order (vectors and codes follow), a
    /// canonical order that does not depend on how many ranks added the vectors or in which
    /// batches. Cost: O(s log s) per list plus one pass over its vectors.
    public mutating func sortListsById() {
        for l in ownedLists where lists[l].count > 1 {
            let list = lists[l]
            let order = list.ids.indices.sorted { list.ids[$0] < list.ids[$1] }
            if order.enumerated().allSatisfy({ $0.offset == $0.element }) { continue }
            var sorted = InvertedList()
            sorted.ids = order.map { list.ids[$0] }
            if storesVectors {
                sorted.vectors.reserveCapacity(list.vectors.count)
                for i in order { sorted.vectors.append(contentsOf: list.vectors[(i * d)..<((i + 1) * d)]) }
                sorted.norms = order.map { list.norms[$0] }
            }
            if m > 0 {
                sorted.codes.reserveCapacity(list.codes.count)
                for i in order { sorted.codes.append(contentsOf: list.codes[(i * m)..<((i + 1) * m)]) }
            }
            for (pos, id) in sorted.ids.enumerated() { idMap[id] = UInt64(l) << 32 | UInt64(pos) }
            lists[l] = sorted
        }
    }

    /// True when this shard holds `id`.
    public func contains(_ id: Int64) -> Bool { idMap[id] != nil }

    /// Contiguous list ranges with about equal vector counts: `parts + 1` boundaries.
    static func balancedBounds(_ counts: [Int], parts: Int) -> [Int] {
        let nlist = counts.count
        let total = counts.reduce(0, +)
        var bounds = [0]
        var acc = 0, l = 0
        for r in 1..<Swift.max(1, parts) {
            if total == 0 {
                bounds.append(r * nlist / parts)
                continue
            }
            let target = Int((Double(total) * Double(r) / Double(parts)).rounded())
            while l < nlist && acc + counts[l] / 2 < target {
                acc += counts[l]
                l += 1
            }
            bounds.append(Swift.max(l, bounds.last!))
        }
        bounds.append(nlist)
        return bounds
    }
}

/// Reserves room for `count` elements, at least doubling the capacity when it grows (so that
/// many small batches stay amortised O(1) per element).
@inline(__always)
func grow<T>(_ a: inout [T], to count: Int) {
    if a.capacity < count { a.reserveCapacity(Swift.max(count, 2 * a.capacity)) }
}

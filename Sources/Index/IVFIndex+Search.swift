import CKernels
import Collective
import Foundation
import Linalg

extension IVFIndex {
    /// The `k` nearest stored vectors of each query, on this shard only (faiss's `search`).
    ///
    /// - Parameter queries: (nq, d) row-major.
    /// - Returns: `distances` and `labels`, both (nq, k) row-major, nearest first: squared L2
    ///   distances ascending, or inner products descending. Missing results are label −1 with
    ///   distance +inf (L2) or −inf (IP).
    /// - Cost: per block of queries one sgemm against the centroids; IVF-Flat then groups the
    ///   (query, list) pairs by list and scans each list with one sgemm for all its queries;
    ///   IVF-PQ builds an m × 256 lookup table per (query, list) and sums m bytes per code.
    public func search(_ queries: [Float], k: Int, parameters: SearchParameters = SearchParameters()) throws
        -> (distances: [Float], labels: [Int64])
    {
        guard isTrained else { throw IndexError("search: the index is not trained") }
        guard queries.count % d == 0 else {
            throw IndexError("search: \(queries.count) values are not queries of width d=\(d)")
        }
        guard k > 0 else { throw IndexError("search: k must be positive, found \(k)") }
        let nq = queries.count / d
        var distances = [Float](repeating: metric.missing, count: nq * k)
        var labels = [Int64](repeating: -1, count: nq * k)
        if nq == 0 { return (distances, labels) }
        let block = Swift.max(1, parameters.queryBlock)
        let blocks = (nq + block - 1) / block
        let threads = Swift.max(1, Swift.min(parameters.threads, blocks))
        queries.withUnsafeBufferPointer { pq in
            distances.withUnsafeMutableBufferPointer { pd in
                labels.withUnsafeMutableBufferPointer { pl in
                    nonisolated(unsafe) let q = pq.baseAddress!, outD = pd.baseAddress!, outL = pl.baseAddress!
                    if threads == 1 {
                        for b in 0..<blocks {
                            let lo = b * block, n = Swift.min(block, nq - lo)
                            searchBlock(
                                q + lo * d, nq: n, k: k, parameters: parameters, distances: outD + lo * k,
                                labels: outL + lo * k)
                        }
                    } else {
                        // Threads take blocks round-robin; BLAS must not spawn threads of its own.
                        let saved = BLAS.threads
                        BLAS.setThreads(1)
                        DispatchQueue.concurrentPerform(iterations: threads) { t in
                            var b = t
                            while b < blocks {
                                let lo = b * block, n = Swift.min(block, nq - lo)
                                searchBlock(
                                    q + lo * d, nq: n, k: k, parameters: parameters, distances: outD + lo * k,
                                    labels: outL + lo * k)
                                b += threads
                            }
                        }
                        BLAS.setThreads(saved)
                    }
                }
            }
        }
        return (distances, labels)
    }

    /// Searches every shard and merges: each rank passes the same `queries` and gets the global
    /// top-k (ties broken by the smaller id, so results do not depend on the rank count).
    /// With re-ranking, the global best `k * refineFactor` ADC candidates are chosen first and
    /// only then re-ranked exactly by the shards that hold them, as on one rank. Collective.
    public func search(
        _ queries: [Float], k: Int, parameters: SearchParameters = SearchParameters(), comm: Communicator
    )
        throws -> (distances: [Float], labels: [Int64])
    {
        let nq = queries.count / d
        guard m > 0, storesVectors, parameters.refineFactor > 1 else {
            return try mergeShards(try search(queries, k: k, parameters: parameters), nq: nq, k: k, comm: comm)
        }
        let kk = k * parameters.refineFactor
        var adc = parameters
        adc.refineFactor = 0
        let candidates = try mergeShards(try search(queries, k: kk, parameters: adc), nq: nq, k: kk, comm: comm)
        return try mergeShards(
            refine(queries, candidates: candidates.labels, kCandidates: kk, k: k), nq: nq, k: k, comm: comm)
    }

    /// Searches every shard for every rank's queries and returns each rank only the global
    /// top-k of its own queries: rank r passes its `queries` (its block) and quantises them
    /// itself (one sgemm per block against the centroids); each query goes, with its probed
    /// lists, only to the shards that own one of them (alltoallv); each shard scans only the
    /// (query, list) pairs it owns and sends its top-k of each query back to the query's rank,
    /// which merges them. Quantisation, scans, merging and traffic all split over the ranks.
    /// The same top-k as `search` on the allgathered queries (ties to the smaller id). IVF-PQ
    /// re-ranking is not supported here. Collective.
    public func searchOwn(
        _ queries: [Float], k: Int, parameters: SearchParameters = SearchParameters(), comm: Communicator
    ) throws -> (distances: [Float], labels: [Int64]) {
        precondition(m == 0 || parameters.refineFactor <= 1, "searchOwn: IVF-PQ re-ranking is not supported")
        guard isTrained else { throw IndexError("search: the index is not trained") }
        guard queries.count % d == 0 else {
            throw IndexError("search: \(queries.count) values are not queries of width d=\(d)")
        }
        guard k > 0 else { throw IndexError("search: k must be positive, found \(k)") }
        guard listBounds == nil || (shardCount == comm.size && listBounds!.count == comm.size + 1) else {
            return try searchAllgathered(queries, k: k, parameters: parameters, comm: comm)
        }
        let nq = queries.count / d, nprobe = Swift.max(1, Swift.min(parameters.nprobe, nlist)), p = comm.size
        var probeL = [Int64](repeating: -1, count: nq * nprobe)
        var probeD = [Float](repeating: 0, count: nq * nprobe)
        queries.withUnsafeBufferPointer { pq in
            if nq > 0 { coarse(pq.baseAddress!, nq: nq, nprobe: nprobe, probeL: &probeL, probeD: &probeD) }
        }
        // Route: per destination shard, [query vector, coarse distances] floats and
        // [probed lists it owns, −1 elsewhere] ints; `routed[r]` = the queries sent to r.
        let owner = (0..<nlist).map { self.owner(of: $0) }
        var sendF = [[Float]](repeating: [], count: p), sendL = [[Int64]](repeating: [], count: p)
        var routed = [[Int]](repeating: [], count: p)
        for i in 0..<nq {
            for r in 0..<p {
                var any = false
                for j in 0..<nprobe where probeL[i * nprobe + j] >= 0 && owner[Int(probeL[i * nprobe + j])] == r {
                    any = true
                    break
                }
                guard any else { continue }
                routed[r].append(i)
                sendF[r] += queries[i * d..<(i + 1) * d]
                sendF[r] += probeD[i * nprobe..<(i + 1) * nprobe]
                for j in 0..<nprobe {
                    let l = probeL[i * nprobe + j]
                    sendL[r].append(l >= 0 && owner[Int(l)] == r ? l : -1)
                }
            }
        }
        let (inF, _) = try comm.alltoallv(sendF.flatMap { $0 }, sendCounts: sendF.map(\.count))
        let (inL, inCounts) = try comm.alltoallv(sendL.flatMap { $0 }, sendCounts: sendL.map(\.count))
        // Scan the received queries on this shard's lists, in blocks.
        let n = inL.count / nprobe, w = d + nprobe
        var qs = [Float](repeating: 0, count: n * d), pd = [Float](repeating: 0, count: n * nprobe)
        for i in 0..<n {
            qs.replaceSubrange(i * d..<(i + 1) * d, with: inF[i * w..<i * w + d])
            pd.replaceSubrange(i * nprobe..<(i + 1) * nprobe, with: inF[i * w + d..<(i + 1) * w])
        }
        var outD = [Float](repeating: metric.missing, count: n * k)
        var outL = [Int64](repeating: -1, count: n * k)
        let block = Swift.max(1, parameters.queryBlock)
        qs.withUnsafeBufferPointer { pq in
            outD.withUnsafeMutableBufferPointer { od in
                outL.withUnsafeMutableBufferPointer { ol in
                    var lo = 0
                    while lo < n {
                        let b = Swift.min(block, n - lo)
                        scanProbed(
                            pq.baseAddress! + lo * d, nq: b, k: k, nprobe: nprobe,
                            probeL: Array(inL[lo * nprobe..<(lo + b) * nprobe]),
                            probeD: Array(pd[lo * nprobe..<(lo + b) * nprobe]), parameters: parameters,
                            distances: od.baseAddress! + lo * k, labels: ol.baseAddress! + lo * k)
                        lo += b
                    }
                }
            }
        }
        // Each source's rows go back to it, in the order it sent them.
        let backCounts = inCounts.map { $0 / nprobe * k }
        let (backD, _) = try comm.alltoallv(outD, sendCounts: backCounts)
        var (backL, _) = try comm.alltoallv(outL, sendCounts: backCounts)
        // Merge: query i's results from every shard it was routed to, by (distance, id).
        var distances = [Float](repeating: metric.missing, count: nq * k)
        var labels = [Int64](repeating: -1, count: nq * k)
        var from = [[(r: Int, row: Int)]](repeating: [], count: nq)
        var row = 0
        for r in 0..<p {
            for i in routed[r] {
                from[i].append((r, row))
                row += 1
            }
        }
        // Each shard's rows are nearest first; equal distances are put in id order, then a
        // p-way merge by (distance, id): O(k · shards) per query.
        func key(_ v: Float) -> Float { metric == .l2 ? v : -v }
        for at in 0..<(backL.count / k) {
            var j = at * k
            let end = at * k + k
            while j < end && backL[j] >= 0 {
                var e = j + 1
                while e < end && backL[e] >= 0 && backD[e] == backD[j] { e += 1 }
                if e - j > 1 { backL[j..<e].sort() }
                j = e
            }
        }
        for i in 0..<nq where !from[i].isEmpty {
            var heads = from[i].map { $0.row * k }
            for out in 0..<k {
                var best = -1
                for s in heads.indices where heads[s] < from[i][s].row * k + k && backL[heads[s]] >= 0 {
                    let h = heads[s]
                    if best < 0 {
                        best = s
                        continue
                    }
                    let b = heads[best]
                    if key(backD[h]) < key(backD[b]) || (backD[h] == backD[b] && backL[h] < backL[b]) { best = s }
                }
                guard best >= 0 else { break }
                distances[i * k + out] = backD[heads[best]]
                labels[i * k + out] = backL[heads[best]]
                heads[best] += 1
            }
        }
        return (distances, labels)
    }

    /// `searchOwn` for an index whose shards do not match the ranks: every rank's queries are
    /// allgathered and searched against this shard, each shard's results for rank r's block go
    /// to r (alltoallv), and r merges them.
    func searchAllgathered(
        _ queries: [Float], k: Int, parameters: SearchParameters, comm: Communicator
    ) throws -> (distances: [Float], labels: [Int64]) {
        let (all, floatCounts) = try comm.allgatherv(queries)
        let blocks = floatCounts.map { $0 / d }
        let local =
            all.isEmpty ? (distances: [Float](), labels: [Int64]()) : try search(all, k: k, parameters: parameters)
        let sendCounts = blocks.map { $0 * k }
        let (received, _) = try comm.alltoallv(local.distances, sendCounts: sendCounts)
        let (receivedLabels, _) = try comm.alltoallv(local.labels, sendCounts: sendCounts)
        return merge(received, receivedLabels, nq: blocks[comm.rank], k: k, sources: comm.size)
    }

    /// Exact distances for the candidate ids (nq, kCandidates) this shard holds; the best k
    /// per query, reported like `search`.
    func refine(_ queries: [Float], candidates: [Int64], kCandidates: Int, k: Int) -> (
        distances: [Float], labels: [Int64]
    ) {
        let nq = queries.count / d
        var distances = [Float](repeating: 0, count: nq * k)
        var labels = [Int64](repeating: -1, count: nq * k)
        queries.withUnsafeBufferPointer { pq in
            distances.withUnsafeMutableBufferPointer { od in
                labels.withUnsafeMutableBufferPointer { ol in
                    for i in 0..<nq {
                        var heap = ResultHeap(distances: od.baseAddress! + i * k, labels: ol.baseAddress! + i * k, k: k)
                        for j in 0..<kCandidates {
                            let id = candidates[i * kCandidates + j]
                            guard id >= 0, let slot = idMap[id] else { continue }
                            let l = Int(slot >> 32), pos = Int(slot & 0xFFFF_FFFF)
                            let dist = lists[l].vectors.withUnsafeBufferPointer {
                                Distances.distance(metric, pq.baseAddress! + i * d, $0.baseAddress! + pos * d, d)
                            }
                            heap.push(dist, id)
                        }
                        heap.sortAscending()
                        for j in 0..<k {
                            od[i * k + j] = ol[i * k + j] < 0 ? metric.missing : metric.report(od[i * k + j])
                        }
                    }
                }
            }
        }
        return (distances, labels)
    }

    /// The global top-k of every shard's (nq, k) results (allgatherv, then a per-query merge by
    /// (distance, id)); identical on every rank.
    func mergeShards(_ local: (distances: [Float], labels: [Int64]), nq: Int, k: Int, comm: Communicator) throws
        -> (distances: [Float], labels: [Int64])
    {
        let (allD, _) = try comm.allgatherv(local.distances)
        let (allL, _) = try comm.allgatherv(local.labels)
        return merge(allD, allL, nq: nq, k: k, sources: comm.size)
    }

    /// The per-query top-k of `sources` result blocks, each (nq, k) of reported distances and
    /// labels, laid out source after source; ties to the smaller id.
    func merge(_ allD: [Float], _ allL: [Int64], nq: Int, k: Int, sources: Int) -> (
        distances: [Float], labels: [Int64]
    ) {
        var distances = [Float](repeating: metric.missing, count: nq * k)
        var labels = [Int64](repeating: -1, count: nq * k)
        let internalD = allD.map { metric == .l2 ? $0 : -$0 }
        internalD.withUnsafeBufferPointer { pd in
            allL.withUnsafeBufferPointer { pl in
                distances.withUnsafeMutableBufferPointer { od in
                    labels.withUnsafeMutableBufferPointer { ol in
                        for i in 0..<nq {
                            var heap = ResultHeap(
                                distances: od.baseAddress! + i * k, labels: ol.baseAddress! + i * k, k: k)
                            for r in 0..<sources {
                                let base = (r * nq + i) * k
                                for j in 0..<k where pl[base + j] >= 0 { heap.push(pd[base + j], pl[base + j]) }
                            }
                            heap.sortAscending()
                            for j in 0..<k {
                                od[i * k + j] = ol[i * k + j] < 0 ? metric.missing : metric.report(od[i * k + j])
                            }
                        }
                    }
                }
            }
        }
        return (distances, labels)
    }

    /// One block of `nq` queries: coarse quantisation, list scans, optional re-ranking, then
    /// internal labels (list << 32 | position) become ids.
    func searchBlock(
        _ q: UnsafePointer<Float>, nq: Int, k: Int, parameters: SearchParameters,
        distances: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int64>
    ) {
        let nprobe = Swift.max(1, Swift.min(parameters.nprobe, nlist))
        // Coarse: the nprobe nearest lists per query, (nq, nprobe).
        var probeL = [Int64](repeating: -1, count: nq * nprobe)
        var probeD = [Float](repeating: 0, count: nq * nprobe)
        coarse(q, nq: nq, nprobe: nprobe, probeL: &probeL, probeD: &probeD)
        scanProbed(
            q, nq: nq, k: k, nprobe: nprobe, probeL: probeL, probeD: probeD, parameters: parameters,
            distances: distances, labels: labels)
    }

    /// Coarse quantisation of `nq` queries: the `nprobe` nearest lists of each, nearest first,
    /// into `probeL` / `probeD` (nq, nprobe); one sgemm per block of `Distances.blockRows`.
    func coarse(
        _ q: UnsafePointer<Float>, nq: Int, nprobe: Int, probeL: inout [Int64], probeD: inout [Float]
    ) {
        if nq == 0 { return }
        if nprobe == 1, let packed = packedCentroids {
            packed.nearest(x: q, n: nq, ldx: d, labels: &probeL, distances: &probeD)
        } else {
            centroids.withUnsafeBufferPointer { pc in
                centroidNorms.withUnsafeBufferPointer { pn in
                    Distances.nearest(
                        x: q, n: nq, d: d, lda: d, centroids: pc.baseAddress!, k: nlist, cNorms: pn.baseAddress,
                        metric: metric, p: nprobe, labels: &probeL, distances: &probeD)
                }
            }
        }
    }

    /// The list scans of `nq` queries whose probed lists are given (`probeL`, −1 = skip, and
    /// their coarse distances `probeD`, both (nq, nprobe)); optional re-ranking; reported
    /// distances and ids into `distances` / `labels` (nq, k).
    func scanProbed(
        _ q: UnsafePointer<Float>, nq: Int, k: Int, nprobe: Int, probeL: [Int64], probeD: [Float],
        parameters: SearchParameters, distances: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int64>
    ) {
        let refine = m > 0 && storesVectors && parameters.refineFactor > 1
        let kk = refine ? k * parameters.refineFactor : k
        // Candidate heaps, (nq, kk), internal distances and labels.
        var heapD = [Float](repeating: .infinity, count: nq * kk)
        var heapL = [Int64](repeating: -1, count: nq * kk)
        var counts = [Int](repeating: 0, count: nq)
        heapD.withUnsafeMutableBufferPointer { hd in
            heapL.withUnsafeMutableBufferPointer { hl in
                var heaps = (0..<nq).map {
                    ResultHeap(distances: hd.baseAddress! + $0 * kk, labels: hl.baseAddress! + $0 * kk, k: kk)
                }
                if m == 0 {
                    // IVF-Flat: exact selection, sorted already (`counts` serves only IVF-PQ's re-ranking).
                    scanFlatSelect(
                        q, nq: nq, k: kk, nprobe: nprobe, probeL: probeL, distances: hd.baseAddress!,
                        labels: hl.baseAddress!)
                    return
                }
                scanPQ(q, nq: nq, nprobe: nprobe, probeL: probeL, probeD: probeD, heaps: &heaps)
                for i in 0..<nq {
                    heaps[i].sortAscending()
                    counts[i] = heaps[i].count
                }
            }
        }
        for i in 0..<nq {
            let outD = distances + i * k, outL = labels + i * k
            if refine {
                // Exact distances for the kk ADC candidates, keep the best k.
                var heap = ResultHeap(distances: outD, labels: outL, k: k)
                for j in 0..<counts[i] {
                    let slot = UInt64(bitPattern: heapL[i * kk + j])
                    let l = Int(slot >> 32), pos = Int(slot & 0xFFFF_FFFF)
                    let dist = lists[l].vectors.withUnsafeBufferPointer {
                        Distances.distance(metric, q + i * d, $0.baseAddress! + pos * d, d)
                    }
                    heap.push(dist, heapL[i * kk + j])
                }
                heap.sortAscending()
            } else {
                for j in 0..<k {
                    outD[j] = heapD[i * kk + j]
                    outL[j] = heapL[i * kk + j]
                }
            }
            for j in 0..<k {
                if outL[j] < 0 {
                    outD[j] = metric.missing
                    continue
                }
                let slot = UInt64(bitPattern: outL[j])
                outL[j] = lists[Int(slot >> 32)].ids[Int(slot & 0xFFFF_FFFF)]
                outD[j] = metric.report(outD[j])
            }
        }
    }

    /// IVF-Flat without heaps: every candidate's internal distance of a query is written to the
    /// query's row (its probed lists in ascending list id, so a row position orders like the
    /// internal label list << 32 | position), the k smallest (distance, position) keys are
    /// quickselected (`mosaic_top_keys`) and sorted. The same k smallest (distance, label) as
    /// `scanFlat`'s heaps, sorted ascending, written to `distances` / `labels` (nq, k; missing:
    /// +inf, −1). Queries go in groups whose rows hold at most `rowBudget` floats; within a group
    /// the (query, list) pairs are grouped by list and a list with ≥ 4 queries is one sgemm.
    func scanFlatSelect(
        _ q: UnsafePointer<Float>, nq: Int, k: Int, nprobe: Int, probeL: [Int64],
        distances: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int64>, rowBudget: Int = 1 << 22
    ) {
        // Per query: its probes sorted by list id, and each probe's offset in the query's row.
        var sortedLists = [Int](repeating: -1, count: nq * nprobe)
        var listStart = [Int](repeating: 0, count: nq * nprobe)
        var rowLength = [Int](repeating: 0, count: nq)
        for i in 0..<nq {
            var ls = (0..<nprobe).map { Int(probeL[i * nprobe + $0]) }.filter { $0 >= 0 }
            ls.sort()
            var at = 0
            for (j, l) in ls.enumerated() {
                sortedLists[i * nprobe + j] = l
                listStart[i * nprobe + j] = at
                at += lists[l].count
            }
            rowLength[i] = at
        }
        var qNorms = [Float](repeating: 0, count: nq)
        if metric == .l2 { Distances.squaredNorms(q, n: nq, d: d, lda: d, into: &qNorms) }
        var buffer = [Float](), keys = [UInt64](), qBuf = [Float](), ip = [Float]()
        var lo = 0
        while lo < nq {
            // The group [lo, hi): rows within the budget (at least one query).
            var hi = lo, total = 0
            var rowStart = [Int]()
            while hi < nq && (hi == lo || total + rowLength[hi] <= rowBudget) {
                rowStart.append(total)
                total += rowLength[hi]
                hi += 1
            }
            rowStart.append(total)
            if buffer.count < total { buffer = [Float](repeating: 0, count: total) }
            // Pairs (query, its j-th sorted list) grouped by list: counting sort.
            var start = [Int](repeating: 0, count: nlist + 1)
            for i in lo..<hi {
                for j in 0..<nprobe where sortedLists[i * nprobe + j] >= 0 {
                    start[sortedLists[i * nprobe + j] + 1] += 1
                }
            }
            for l in 0..<nlist { start[l + 1] += start[l] }
            var fill = start
            var pairs = [Int](repeating: 0, count: start[nlist])  // i * nprobe + j
            for i in lo..<hi {
                for j in 0..<nprobe where sortedLists[i * nprobe + j] >= 0 {
                    let l = sortedLists[i * nprobe + j]
                    pairs[fill[l]] = i * nprobe + j
                    fill[l] += 1
                }
            }
            buffer.withUnsafeMutableBufferPointer { pb in
                let out = pb.baseAddress!
                for l in 0..<nlist {
                    let t = start[l + 1] - start[l], s = lists[l].count
                    if t == 0 || s == 0 { continue }
                    func row(_ pair: Int) -> UnsafeMutablePointer<Float> {
                        let i = pair / nprobe
                        return out + rowStart[i - lo] + listStart[pair]
                    }
                    if t < 4 {
                        // Few queries on this list: direct SIMD distances (CKernels) beat a thin sgemm.
                        lists[l].vectors.withUnsafeBufferPointer { pv in
                            for r in 0..<t {
                                let pair = pairs[start[l] + r]
                                mosaic_distances_to_rows(
                                    metric == .l2 ? 1 : 0, q + (pair / nprobe) * d, pv.baseAddress!, s, d, row(pair))
                            }
                        }
                        continue
                    }
                    if qBuf.count < t * d { qBuf = [Float](repeating: 0, count: t * d) }
                    if ip.count < t * s { ip = [Float](repeating: 0, count: t * s) }
                    qBuf.withUnsafeMutableBufferPointer { qb in
                        for r in 0..<t {
                            (qb.baseAddress! + r * d).update(from: q + (pairs[start[l] + r] / nprobe) * d, count: d)
                        }
                        lists[l].vectors.withUnsafeBufferPointer { pv in
                            lists[l].norms.withUnsafeBufferPointer { pn in
                                ip.withUnsafeMutableBufferPointer { pip in
                                    BLAS.gemm(
                                        .none, .transpose, m: t, n: s, k: d, a: qb.baseAddress!, lda: d,
                                        b: pv.baseAddress!, ldb: d, c: pip.baseAddress!, ldc: s)
                                    for r in 0..<t {
                                        let pair = pairs[start[l] + r]
                                        let src = pip.baseAddress! + r * s, dst = row(pair)
                                        if metric == .l2 {
                                            let qn = qNorms[pair / nprobe]
                                            for j in 0..<s { dst[j] = Swift.max(0, qn + pn[j] - 2 * src[j]) }
                                        } else {
                                            for j in 0..<s { dst[j] = -src[j] }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                // Per query: the k smallest (distance, position), sorted; positions to labels.
                for i in lo..<hi {
                    let n = rowLength[i], base = out + rowStart[i - lo]
                    if keys.count < n { keys = [UInt64](repeating: 0, count: n) }
                    var m = 0
                    keys.withUnsafeMutableBufferPointer { pk in
                        let key = pk.baseAddress!
                        for j in 0..<n where !base[j].isNaN {
                            // Complemented (ordered distance bits, position): the largest keys
                            // are the smallest distances, ties to the smaller position.
                            let v = base[j] == 0 ? Float(0) : base[j]
                            let b = v.bitPattern
                            let ordered = b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
                            key[m] = ~(UInt64(ordered) << 32 | UInt64(j))
                            m += 1
                        }
                        let kept = Swift.min(k, m)
                        mosaic_top_keys(key, m, kept)
                        // Back to (distance, position) keys, sorted ascending (no comparator).
                        var top = UnsafeMutableBufferPointer(start: key, count: kept)
                        for r in 0..<kept { top[r] = ~top[r] }
                        top.sort()
                        for r in 0..<kept {
                            let j = Int(UInt32(truncatingIfNeeded: top[r]))
                            // The sorted list holding position j.
                            var a = 0, b = nprobe - 1
                            while a < b {
                                let mid = (a + b + 1) / 2
                                if sortedLists[i * nprobe + mid] >= 0 && listStart[i * nprobe + mid] <= j {
                                    a = mid
                                } else {
                                    b = mid - 1
                                }
                            }
                            let l = sortedLists[i * nprobe + a]
                            distances[i * k + r] = base[j]
                            labels[i * k + r] = Int64(l) << 32 | Int64(j - listStart[i * nprobe + a])
                        }
                        for r in kept..<k {
                            distances[i * k + r] = .infinity
                            labels[i * k + r] = -1
                        }
                    }
                }
            }
            lo = hi
        }
    }

    /// IVF-PQ: asymmetric distance computation. Per query the inner products with every
    /// sub-centroid (m, 256); per (query, list) a lookup table T[j][c] = ‖p‖² + 2 c_l·p − 2 q·p
    /// (L2, by residual) or −q·p (IP), then distance = base + Σ_j T[j][code_j].
    func scanPQ(
        _ q: UnsafePointer<Float>, nq: Int, nprobe: Int, probeL: [Int64], probeD: [Float], heaps: inout [ResultHeap]
    ) {
        guard let pq else { return }
        let ksub = ProductQuantizer.ksub, mk = m * ksub
        var qp = [Float](repeating: 0, count: nq * mk)
        qp.withUnsafeMutableBufferPointer { pq.innerProductTables(q, nq: nq, into: $0.baseAddress!) }
        var lut = [Float](repeating: 0, count: mk)
        let m = self.m
        qp.withUnsafeBufferPointer { pqp in
            pqListTerm.withUnsafeBufferPointer { pterm in
                lut.withUnsafeMutableBufferPointer { plut in
                    let table = plut.baseAddress!
                    for i in 0..<nq {
                        let qpi = pqp.baseAddress! + i * mk
                        if metric == .innerProduct { for t in 0..<mk { table[t] = -qpi[t] } }
                        for p in 0..<nprobe {
                            let l = Int(probeL[i * nprobe + p])
                            if l < 0 || lists[l].count == 0 { continue }
                            // L2: base = ‖q − c_l‖²; IP: base = −q·c_l. Both are the coarse distance.
                            let base = probeD[i * nprobe + p]
                            if metric == .l2 {
                                let term = pterm.baseAddress! + l * mk
                                for t in 0..<mk { table[t] = term[t] - 2 * qpi[t] }
                            }
                            let s = lists[l].count
                            let lbase = Int64(l) << 32
                            lists[l].codes.withUnsafeBufferPointer { pc in
                                var thr = heaps[i].threshold
                                var code = pc.baseAddress!
                                for j in 0..<s {
                                    var dist = base
                                    var t = 0
                                    while t + 4 <= m {
                                        dist +=
                                            table[t * ksub + Int(code[t])] + table[(t + 1) * ksub + Int(code[t + 1])]
                                            + table[(t + 2) * ksub + Int(code[t + 2])]
                                            + table[(t + 3) * ksub + Int(code[t + 3])]
                                        t += 4
                                    }
                                    while t < m {
                                        dist += table[t * ksub + Int(code[t])]
                                        t += 1
                                    }
                                    if dist <= thr {
                                        heaps[i].push(dist, lbase | Int64(j))
                                        thr = heaps[i].threshold
                                    }
                                    code += m
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

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
    /// top-k of its own queries: rank r passes its `queries` (its block); the blocks are
    /// allgathered and searched against this shard, each shard's results for rank r's block are
    /// sent to r alone (alltoallv), and r merges them. Unlike `search`, no rank merges the
    /// other ranks' queries, so merging and traffic split over the ranks. The same top-k as
    /// `search` on the allgathered queries (ties to the smaller id). IVF-PQ re-ranking is not
    /// supported here. Collective.
    public func searchOwn(
        _ queries: [Float], k: Int, parameters: SearchParameters = SearchParameters(), comm: Communicator
    ) throws -> (distances: [Float], labels: [Int64]) {
        precondition(m == 0 || parameters.refineFactor <= 1, "searchOwn: IVF-PQ re-ranking is not supported")
        let (all, floatCounts) = try comm.allgatherv(queries)
        let blocks = floatCounts.map { $0 / d }
        let local =
            all.isEmpty ? (distances: [Float](), labels: [Int64]()) : try search(all, k: k, parameters: parameters)
        // This shard's rows of block r go to rank r (reported distances; internal order below).
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
        let refine = m > 0 && storesVectors && parameters.refineFactor > 1
        let kk = refine ? k * parameters.refineFactor : k
        // Coarse: the nprobe nearest lists per query, (nq, nprobe).
        var probeL = [Int64](repeating: -1, count: nq * nprobe)
        var probeD = [Float](repeating: 0, count: nq * nprobe)
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
                    scanFlat(q, nq: nq, nprobe: nprobe, probeL: probeL, heaps: &heaps)
                } else {
                    scanPQ(q, nq: nq, nprobe: nprobe, probeL: probeL, probeD: probeD, heaps: &heaps)
                }
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

    /// IVF-Flat: the (query, list) pairs grouped by list; per list one sgemm of its queries
    /// against its vectors, (t, s) = Q_l (t, d) · V_lᵀ (d, s).
    func scanFlat(_ q: UnsafePointer<Float>, nq: Int, nprobe: Int, probeL: [Int64], heaps: inout [ResultHeap]) {
        // Counting sort of pairs by list.
        var start = [Int](repeating: 0, count: nlist + 1)
        for l in probeL where l >= 0 { start[Int(l) + 1] += 1 }
        for l in 0..<nlist { start[l + 1] += start[l] }
        var fill = start
        var pairQuery = [Int](repeating: 0, count: start[nlist])
        for i in 0..<nq {
            for p in 0..<nprobe {
                let l = Int(probeL[i * nprobe + p])
                if l < 0 { continue }
                pairQuery[fill[l]] = i
                fill[l] += 1
            }
        }
        var qNorms = [Float](repeating: 0, count: nq)
        if metric == .l2 { Distances.squaredNorms(q, n: nq, d: d, lda: d, into: &qNorms) }
        var qBuf = [Float]()
        var ip = [Float]()
        var dBuf = [Float]()
        for l in 0..<nlist {
            let t = start[l + 1] - start[l]
            let s = lists[l].count
            if t == 0 || s == 0 { continue }
            if t < 4 {
                // Few queries on this list: direct SIMD distances (CKernels) beat a thin sgemm.
                if dBuf.count < s { dBuf = [Float](repeating: 0, count: Swift.max(s, 2 * dBuf.count)) }
                lists[l].vectors.withUnsafeBufferPointer { pv in
                    dBuf.withUnsafeMutableBufferPointer { pd in
                        let base = Int64(l) << 32
                        let out = pd.baseAddress!
                        for r in 0..<t {
                            let i = pairQuery[start[l] + r]
                            mosaic_distances_to_rows(metric == .l2 ? 1 : 0, q + i * d, pv.baseAddress!, s, d, out)
                            var thr = heaps[i].threshold
                            for j in 0..<s where out[j] <= thr {
                                heaps[i].push(out[j], base | Int64(j))
                                thr = heaps[i].threshold
                            }
                        }
                    }
                }
                continue
            }
            if qBuf.count < t * d { qBuf = [Float](repeating: 0, count: t * d) }
            if ip.count < t * s { ip = [Float](repeating: 0, count: t * s) }
            qBuf.withUnsafeMutableBufferPointer { qb in
                for r in 0..<t {
                    (qb.baseAddress! + r * d).update(from: q + pairQuery[start[l] + r] * d, count: d)
                }
                lists[l].vectors.withUnsafeBufferPointer { pv in
                    lists[l].norms.withUnsafeBufferPointer { pn in
                        ip.withUnsafeMutableBufferPointer { pip in
                            BLAS.gemm(
                                .none, .transpose, m: t, n: s, k: d, a: qb.baseAddress!, lda: d, b: pv.baseAddress!,
                                ldb: d,
                                c: pip.baseAddress!, ldc: s)
                            let base = Int64(l) << 32
                            for r in 0..<t {
                                let i = pairQuery[start[l] + r]
                                let row = pip.baseAddress! + r * s
                                var thr = heaps[i].threshold
                                if metric == .l2 {
                                    let qn = qNorms[i]
                                    for j in 0..<s {
                                        let dist = qn + pn[j] - 2 * row[j]
                                        if dist <= thr {
                                            heaps[i].push(Swift.max(0, dist), base | Int64(j))
                                            thr = heaps[i].threshold
                                        }
                                    }
                                } else {
                                    for j in 0..<s {
                                        let dist = -row[j]
                                        if dist <= thr {
                                            heaps[i].push(dist, base | Int64(j))
                                            thr = heaps[i].threshold
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
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

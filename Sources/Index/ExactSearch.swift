import Foundation
import Linalg

/// Exact k-nearest-neighbour search by brute force (faiss's `IndexFlat` search): the
/// reference that recall is measured against.
public enum ExactSearch {
    /// The `k` nearest rows of `base` (n, d) for each of `queries` (nq, d), nearest first.
    ///
    /// - Returns: `distances` (squared L2 ascending, or inner products descending) and
    ///   `labels` (row numbers in `base`, or `ids[row]` when `ids` is given), both (nq, k).
    /// - Cost: 2·nq·n·d flops in sgemm blocks of (1024 queries × 16384 base rows).
    public static func search(
        base: [Float], ids: [Int64]? = nil, queries: [Float], d: Int, k: Int, metric: Metric = .l2
    )
        -> (distances: [Float], labels: [Int64])
    {
        let n = base.count / d, nq = queries.count / d
        var outD = [Float](repeating: .infinity, count: nq * k)
        var outL = [Int64](repeating: -1, count: nq * k)
        let qb = 1024, bb = 16384
        let baseNorms = Distances.squaredNorms(base, n: n, d: d)
        let qNorms = Distances.squaredNorms(queries, n: nq, d: d)
        var ip = [Float](repeating: 0, count: qb * bb)
        base.withUnsafeBufferPointer { pb in
            queries.withUnsafeBufferPointer { pq in
                outD.withUnsafeMutableBufferPointer { od in
                    outL.withUnsafeMutableBufferPointer { ol in
                        ip.withUnsafeMutableBufferPointer { pip in
                            var q0 = 0
                            while q0 < nq {
                                let tq = Swift.min(qb, nq - q0)
                                var heaps = (0..<tq).map {
                                    ResultHeap(
                                        distances: od.baseAddress! + (q0 + $0) * k,
                                        labels: ol.baseAddress! + (q0 + $0) * k, k: k)
                                }
                                var b0 = 0
                                while b0 < n {
                                    let tb = Swift.min(bb, n - b0)
                                    BLAS.gemm(
                                        .none, .transpose, m: tq, n: tb, k: d, a: pq.baseAddress! + q0 * d, lda: d,
                                        b: pb.baseAddress! + b0 * d, ldb: d, c: pip.baseAddress!, ldc: tb)
                                    for i in 0..<tq {
                                        let row = pip.baseAddress! + i * tb
                                        var thr = heaps[i].threshold
                                        for j in 0..<tb {
                                            let dist =
                                                metric == .l2
                                                ? Swift.max(0, qNorms[q0 + i] + baseNorms[b0 + j] - 2 * row[j])
                                                : -row[j]
                                            if dist <= thr {
                                                heaps[i].push(dist, Int64(b0 + j))
                                                thr = heaps[i].threshold
                                            }
                                        }
                                    }
                                    b0 += tb
                                }
                                for i in 0..<tq { heaps[i].sortAscending() }
                                q0 += tq
                            }
                        }
                    }
                }
            }
        }
        for i in 0..<nq * k {
            if outL[i] < 0 { outD[i] = metric.missing; continue }
            outD[i] = metric.report(outD[i])
            if let ids { outL[i] = ids[Int(outL[i])] }
        }
        return (outD, outL)
    }

    /// Recall@k as faiss's benchmarks report it: |found ∩ truth| / (nq · k), comparing the
    /// first k of each row of `found` (nq, kFound) with the first k of `truth` (nq, kTruth).
    public static func recall(found: [Int64], kFound: Int, truth: [Int64], kTruth: Int, k: Int) -> Double {
        let nq = truth.count / kTruth
        var hits = 0
        for i in 0..<nq {
            let t = Set(truth[(i * kTruth)..<(i * kTruth + k)])
            for j in 0..<Swift.min(k, kFound) where t.contains(found[i * kFound + j]) && found[i * kFound + j] >= 0 {
                hits += 1
            }
        }
        return nq == 0 ? 1 : Double(hits) / Double(nq * k)
    }
}

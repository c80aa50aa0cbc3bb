import Collective
import Foundation
import Linalg

// Glossary: N = global training points (all ranks), n = this rank's points, M = global sample,
// k = centroids, d = dimension.

/// Parameters of distributed k-means (faiss's `ClusteringParameters`).
public struct KMeansParameters: Sendable, Equatable {
    /// How the first k centroids are chosen.
    public enum Initialization: String, Sendable, CaseIterable {
        /// k-means++ (D² sampling), distributed: one broadcast point per centroid.
        case kMeansPlusPlus = "kmeans++"
        /// k distinct sample points chosen uniformly (faiss's default).
        case random
    }

    /// Maximum Lloyd iterations (default 25, as faiss).
    public var iterations: Int
    /// Stop when the objective improves by less than this fraction (default 1e-4; 0 = never).
    public var tolerance: Double
    /// Seed for sampling, initialisation and empty-cluster repair (default 1234).
    public var seed: UInt64
    /// The training sample is at most `k * maxPointsPerCentroid` points (default 256, as faiss).
    public var maxPointsPerCentroid: Int
    /// Initialisation (default k-means++).
    public var initialization: Initialization
    /// L2 (default) or inner product (spherical k-means: centroids are renormalised).
    public var metric: Metric
    /// Log the objective per iteration on rank 0 (default false).
    public var verbose: Bool

    public init(
        iterations: Int = 25, tolerance: Double = 1e-4, seed: UInt64 = 1234, maxPointsPerCentroid: Int = 256,
        initialization: Initialization = .kMeansPlusPlus, metric: Metric = .l2, verbose: Bool = false
    ) {
        self.iterations = iterations
        self.tolerance = tolerance
        self.seed = seed
        self.maxPointsPerCentroid = maxPointsPerCentroid
        self.initialization = initialization
        self.metric = metric
        self.verbose = verbose
    }
}

/// What training produced.
public struct KMeansResult: Sendable {
    /// Centroids, (k, d) row-major.
    public var centroids: [Float]
    /// Objective per Lloyd iteration over the global sample, measured at the assignment step:
    /// sum of squared distances (L2, never rises) or sum of inner products (IP, never falls).
    public var objective: [Double]
    /// Global training sample size M.
    public var sampleSize: Int
    /// Empty clusters repaired over all iterations.
    public var repairedClusters: Int
}

/// Distributed Lloyd k-means (faiss's `Clustering`), data-parallel over MPI ranks.
///
/// Every rank holds a contiguous slice of the global training rows (rank 0 the first rows, and
/// so on). The training sample, the initial centroids and the empty-cluster repairs are chosen
/// by global row index from the seed alone, so the centroids do not depend on the rank count
/// (up to floating-point reduction order: sums are accumulated and reduced in Double).
///
/// Per iteration each rank assigns its own sample rows with blocked sgemm distances, then one
/// allreduce combines the (k, d) sums, the k counts and the objective.
public struct KMeans: Sendable {
    /// Dimension.
    public let d: Int
    /// Number of centroids.
    public let k: Int
    public var parameters: KMeansParameters

    public init(d: Int, k: Int, parameters: KMeansParameters = KMeansParameters()) {
        self.d = d
        self.k = k
        self.parameters = parameters
    }

    /// Trains on this rank's rows `x`, (n, d) row-major. Collective: every rank calls it.
    ///
    /// Fewer global points than centroids is allowed: the extra centroids are split off the
    /// largest clusters (they may coincide with points). Throws when there are no points at all.
    public func train(_ x: [Float], comm: Communicator) throws -> KMeansResult {
        guard d > 0, k > 0 else { throw IndexError("k-means: d (\(d)) and k (\(k)) must be positive") }
        guard x.count % d == 0 else { throw IndexError("k-means: \(x.count) values are not rows of width \(d)") }
        let n = x.count / d
        let counts = try comm.allgatherv([Int64(n)]).values.map(Int.init)
        let total = counts.reduce(0, +)
        guard total > 0 else { throw IndexError("k-means: no training points on any rank") }
        let offset = counts[..<comm.rank].reduce(0, +)

        // The global sample: M row indices chosen from N by the seed alone (Floyd), kept sorted.
        let m = Swift.min(total, k * Swift.max(1, parameters.maxPointsPerCentroid))
        let sampleIndices = Self.sample(m, from: total, seed: parameters.seed)
        // This rank's part of the sample: a contiguous run of sample positions.
        let lo = lowerBound(sampleIndices, offset), hi = lowerBound(sampleIndices, offset + n)
        let sampleOffset = lo
        let ns = hi - lo
        var xs = [Float](repeating: 0, count: ns * d)
        x.withUnsafeBufferPointer { px in
            xs.withUnsafeMutableBufferPointer { ps in
                for i in 0..<ns {
                    let row = sampleIndices[lo + i] - offset
                    (ps.baseAddress! + i * d).update(from: px.baseAddress! + row * d, count: d)
                }
            }
        }
        if parameters.verbose {
            comm.log(
                "k-means: k=\(k) d=\(d) N=\(total) sample M=\(m) on \(comm.size) rank(s), init \(parameters.initialization.rawValue)"
            )
        }
        var centroids = try initialCentroids(xs, ns: ns, sampleOffset: sampleOffset, m: m, comm: comm)
        return try lloyd(xs, ns: ns, m: m, centroids: &centroids, comm: comm)
    }

    /// Lloyd iterations on the local sample `xs` (ns, d).
    private func lloyd(_ xs: [Float], ns: Int, m: Int, centroids: inout [Float], comm: Communicator) throws
        -> KMeansResult
    {
        let metric = parameters.metric
        var objective: [Double] = []
        var repaired = 0
        var labels = [Int64](repeating: 0, count: ns)
        var dist = [Float](repeating: 0, count: ns)
        // One reduction buffer: sums (k, d), counts (k), objective (1).
        var reduce = [Double](repeating: 0, count: k * d + k + 1)
        for iteration in 0..<Swift.max(1, parameters.iterations) {
            let t0 = Date()
            let norms = Distances.squaredNorms(centroids, n: k, d: d)
            xs.withUnsafeBufferPointer { px in
                centroids.withUnsafeBufferPointer { pc in
                    norms.withUnsafeBufferPointer { pn in
                        labels.withUnsafeMutableBufferPointer { pl in
                            dist.withUnsafeMutableBufferPointer { pd in
                                if ns > 0 {
                                    Distances.nearest(
                                        x: px.baseAddress!, n: ns, d: d, lda: d, centroids: pc.baseAddress!, k: k,
                                        cNorms: pn.baseAddress, metric: metric, p: 1, labels: pl.baseAddress!,
                                        distances: pd.baseAddress!)
                                }
                            }
                        }
                    }
                }
            }
            for i in reduce.indices { reduce[i] = 0 }
            reduce.withUnsafeMutableBufferPointer { r in
                xs.withUnsafeBufferPointer { px in
                    let sums = r.baseAddress!, cnt = r.baseAddress! + k * d
                    var obj = 0.0
                    for i in 0..<ns {
                        let c = Int(labels[i])
                        let row = px.baseAddress! + i * d, s = sums + c * d
                        for j in 0..<d { s[j] += Double(row[j]) }
                        cnt[c] += 1
                        obj += Double(dist[i])
                    }
                    r[k * d + k] = metric == .l2 ? obj : -obj
                }
            }
            try comm.allreduce(&reduce)
            let obj = reduce[k * d + k]
            objective.append(obj)
            if parameters.verbose {
                let seconds = Date().timeIntervalSince(t0)
                comm.log(
                    String(
                        format: "k-means iteration %d/%d: objective %.6g (%.2fs, ETA %.1fs)", iteration + 1,
                        parameters.iterations,
                        obj, seconds, seconds * Double(parameters.iterations - iteration - 1)))
            }
            if objective.count >= 2, parameters.tolerance > 0 {
                let prev = objective[objective.count - 2]
                let gain = metric == .l2 ? prev - obj : obj - prev
                if gain <= parameters.tolerance * Swift.max(abs(prev), 1e-30) { break }
            }
            if iteration + 1 >= Swift.max(1, parameters.iterations) { break }
            // Update: mean of each cluster (renormalised for inner product).
            var counts = Array(reduce[(k * d)..<(k * d + k)])
            for c in 0..<k where counts[c] > 0 {
                var norm = 0.0
                for j in 0..<d {
                    let v = reduce[c * d + j] / counts[c]
                    centroids[c * d + j] = Float(v)
                    norm += v * v
                }
                if metric == .innerProduct, norm > 0 {
                    let inv = 1 / norm.squareRoot()
                    for j in 0..<d { centroids[c * d + j] = Float(reduce[c * d + j] / counts[c] * inv) }
                }
            }
            repaired += repairEmptyClusters(&centroids, counts: &counts)
        }
        return KMeansResult(centroids: centroids, objective: objective, sampleSize: m, repairedClusters: repaired)
    }

    /// Empty clusters take half of the largest cluster: its centroid is copied and both copies
    /// are nudged apart (faiss's split). Deterministic: the counts are the same on every rank.
    func repairEmptyClusters(_ centroids: inout [Float], counts: inout [Double]) -> Int {
        let eps: Float = 1.0 / 1024
        var repaired = 0
        for ci in 0..<k where counts[ci] == 0 {
            var cj = 0
            for c in 1..<k where counts[c] > counts[cj] { cj = c }
            for j in 0..<d {
                let v = centroids[cj * d + j]
                let delta = eps * Swift.max(abs(v), 1e-3) * (j % 2 == 0 ? 1 : -1)
                centroids[ci * d + j] = v + delta
                centroids[cj * d + j] = v - delta
            }
            counts[ci] = (counts[cj] / 2).rounded(.down)
            counts[cj] -= counts[ci]
            repaired += 1
        }
        return repaired
    }

    // MARK: - Initialisation

    /// The initial (k, d) centroids, identical on every rank.
    private func initialCentroids(_ xs: [Float], ns: Int, sampleOffset: Int, m: Int, comm: Communicator) throws
        -> [Float]
    {
        var rng = RandomStream(seed: parameters.seed, index: 1)
        if parameters.initialization == .random || m <= k {
            // k distinct sample positions (all of them, cycled, when M ≤ k).
            let positions = m <= k ? (0..<k).map { $0 % m } : Self.sample(k, from: m, seed: parameters.seed &+ 1)
            var c = [Float](repeating: 0, count: k * d)
            for (i, pos) in positions.enumerated() where pos >= sampleOffset && pos < sampleOffset + ns {
                for j in 0..<d { c[i * d + j] = xs[(pos - sampleOffset) * d + j] }
            }
            // Only the owner of each point wrote it: the sum is exact.
            try comm.allreduce(&c)
            return c
        }
        // k-means++: D² sampling, each choice drawn from the same stream on every rank.
        var c = [Float](repeating: 0, count: k * d)
        var minD = [Float](repeating: .infinity, count: ns)
        var chosen = rng.int(below: m)
        for ci in 0..<k {
            var v = [Float](repeating: 0, count: d)
            if chosen >= sampleOffset && chosen < sampleOffset + ns {
                for j in 0..<d { v[j] = xs[(chosen - sampleOffset) * d + j] }
            }
            try comm.allreduce(&v)
            for j in 0..<d { c[ci * d + j] = v[j] }
            if ci + 1 == k { break }
            var localSum = 0.0
            xs.withUnsafeBufferPointer { px in
                v.withUnsafeBufferPointer { pv in
                    for i in 0..<ns {
                        let dd = Distances.l2(px.baseAddress! + i * d, pv.baseAddress!, d)
                        if dd < minD[i] { minD[i] = dd }
                        localSum += Double(minD[i])
                    }
                }
            }
            let sums = try comm.allgatherv([localSum]).values
            let totalSum = sums.reduce(0, +)
            let u = rng.uniform()
            if totalSum <= 0 {
                chosen = Int(u * Double(m)) % m
                continue
            }
            let target = u * totalSum
            // The rank whose prefix range holds `target`, then the point inside it.
            var acc = 0.0, owner = comm.size - 1
            for r in 0..<comm.size {
                if target < acc + sums[r] { owner = r; break }
                acc += sums[r]
            }
            var pick: Int64 = -1
            if owner == comm.rank {
                var run = acc
                pick = Int64(sampleOffset + ns - 1)
                for i in 0..<ns {
                    run += Double(minD[i])
                    if target < run { pick = Int64(sampleOffset + i); break }
                }
            }
            chosen = Int(try comm.allreduce(pick, op: .max))
        }
        return c
    }

    /// `count` distinct integers from `0 ..< n`, sorted, drawn by Floyd's algorithm from `seed`
    /// alone (O(count) memory, independent of any rank layout).
    static func sample(_ count: Int, from n: Int, seed: UInt64) -> [Int] {
        if count >= n { return Array(0..<n) }
        var rng = RandomStream(seed: seed, index: 0)
        var chosen = Set<Int>(minimumCapacity: count)
        for j in (n - count)..<n {
            let t = rng.int(below: j + 1)
            if !chosen.insert(t).inserted { chosen.insert(j) }
        }
        return chosen.sorted()
    }
}

/// First index of sorted `a` whose value is ≥ `value`.
func lowerBound(_ a: [Int], _ value: Int) -> Int {
    var lo = 0, hi = a.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if a[mid] < value { lo = mid + 1 } else { hi = mid }
    }
    return lo
}

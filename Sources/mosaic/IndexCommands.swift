import Artifacts
import ArgumentParser
import Collective
import Foundation
import Index
import Linalg

/// `mosaic index …`: build, search and update IVF indexes (issue 5).
struct IndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "IVF-Flat / IVF-PQ approximate nearest-neighbour index: build, search, add, remove.",
        discussion: """
            Every subcommand runs under mpirun: ranks share the work and the index is sharded by \
            contiguous ranges of list ids. Example:
              Cluster/mpirun-local.sh -np 2 .build/release/mosaic index build --input pins.h5 --output pins.ivf.h5
            """,
        subcommands: [IndexBuild.self, IndexSearch.self, IndexAdd.self, IndexRemove.self])
}

/// Input vectors: an HDF5 dataset (n, d) float32 and optional ids (n) int64.
struct VectorInput: ParsableArguments {
    @Option(help: "HDF5 file holding the vectors.") var input: String
    @Option(help: "Dataset of the vectors in --input: float32, shape (n, d).") var dataset = "vectors"
    @Option(help: "Dataset of the ids in --input: int64, shape (n); when absent, ids are the row numbers.")
    var idsDataset = "ids"

    /// This rank's contiguous slice of rows, its ids, d and the global row count.
    func readSlice(comm: Communicator) throws -> (x: [Float], ids: [Int64], d: Int, total: Int, first: Int) {
        let file = try H5File(path: input, mode: .read)
        let ds = try file.root.dataset(dataset, of: Float.self, shape: [nil, nil])
        let n = ds.shape[0], d = ds.shape[1]
        guard d > 0 else {
            throw ArtifactError(
                file: input, object: ds.path, message: "expected vectors of dimension ≥ 1, found (\(n), 0)")
        }
        let lo = comm.rank * n / comm.size, hi = (comm.rank + 1) * n / comm.size
        let x = try ds.readRows(lo..<hi, as: Float.self)
        for (i, v) in x.enumerated() where !v.isFinite {
            throw ArtifactError(
                file: input, object: ds.path,
                message: "row \(lo + i / d), column \(i % d): expected a finite value, found \(v)")
        }
        var ids = (lo..<hi).map(Int64.init)
        if file.root.contains(idsDataset) {
            ids = try file.root.dataset(idsDataset, of: Int64.self, shape: [n]).readRows(lo..<hi, as: Int64.self)
        }
        return (x, ids, d, n, lo)
    }
}

/// Adds this rank's rows `x` in local batches (collective: every rank makes the same number
/// of calls), with progress, then sorts every list by id: the canonical order makes the index
/// file the same whatever the rank count and batch size.
func addInBatches(
    _ index: inout IVFIndex, x: [Float], ids: [Int64], total: Int, batch: Int, comm: Communicator
) throws {
    let d = index.d
    let n = ids.count
    let rounds = Int(try comm.allreduce(Int64((n + batch - 1) / batch), op: .max))
    let t0 = Date()
    for r in 0..<rounds {
        let lo = Swift.min(n, r * batch), hi = Swift.min(n, lo + batch)
        try index.add(Array(x[(lo * d)..<(hi * d)]), ids: Array(ids[lo..<hi]), comm: comm)
        let done = Int(try comm.allreduce(Int64(hi)))
        let elapsed = Date().timeIntervalSince(t0)
        let eta = elapsed * Double(total - done) / Double(Swift.max(1, done))
        comm.log(
            String(
                format: "add: %d / %d vectors (%.0f%%), %.1fs, ETA %.1fs", done, total,
                100 * Double(done) / Double(Swift.max(1, total)), elapsed, eta))
    }
    index.sortListsById()
}

struct IndexBuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Train (distributed k-means) and fill an IVF-Flat or IVF-PQ index; write it to HDF5.",
        discussion: """
            Each rank reads a contiguous slice of the input rows (hyperslab), k-means runs \
            data-parallel with allreduce, and each vector is sent to the rank owning its list \
            (alltoallv). The output is one HDF5 file (schema mosaic.ivf v1) whose lists are in \
            list-id order. Prints `INDEX BUILT …` with timings on rank 0.
            """)

    @OptionGroup var source: VectorInput
    @Option(help: "Output index file (HDF5).") var output: String
    @Option(help: "Inverted lists (coarse centroids).") var nlist = 1024
    @Option(help: "Metric: l2 or ip (inner product).") var metric = "l2"
    @Option(help: "IVF-PQ sub-quantisers m (must divide d); 0 builds IVF-Flat.") var pqM = 0
    @Flag(help: "IVF-PQ: also store the full vectors, for exact re-ranking at search time.") var keepVectors = false
    @Option(help: "k-means iterations (coarse and PQ).") var iterations = 25
    @Option(help: "k-means stops when the objective improves by less than this fraction (0 = never).") var tolerance =
        1e-4
    @Option(help: "k-means initialisation: random or kmeans++.") var initialization = "random"
    @Option(help: "k-means training sample: at most this many points per centroid.") var maxPointsPerCentroid = 256
    @Option(help: "Seed for sampling, initialisation and repairs.") var seed: UInt64 = 1234
    @Option(help: "Vectors added per collective round (bounds the exchange buffers).") var addBatch = 262_144
    @Option(help: "OpenBLAS threads per rank.") var threads = 1
    @Flag(help: "Do not log the k-means objective and ETA per iteration.") var quiet = false

    func parameters() throws -> IVFParameters {
        guard let metric = Metric(rawValue: metric) else {
            throw ValidationError("--metric: expected l2 or ip, found \(metric)")
        }
        guard let initialization = KMeansParameters.Initialization(rawValue: initialization) else {
            throw ValidationError("--initialization: expected random or kmeans++, found \(initialization)")
        }
        let km = KMeansParameters(
            iterations: iterations, tolerance: tolerance, seed: seed, maxPointsPerCentroid: maxPointsPerCentroid,
            initialization: initialization, metric: metric, verbose: !quiet)
        var pqKM = km
        pqKM.seed = seed &+ 1_000_003
        pqKM.initialization = .random
        return IVFParameters(
            nlist: nlist, metric: metric, pqM: pqM, keepVectors: keepVectors, kmeans: km, pqKMeans: pqKM)
    }

    func run() throws {
        let parameters = try parameters()
        Communicator.runJob { comm in
            BLAS.setThreads(threads)
            let t0 = Date()
            let (x, ids, d, total, _) = try source.readSlice(comm: comm)
            let tRead = Date()
            comm.log(
                "index build: \(total) vectors of d=\(d) from \(source.input) on \(comm.size) rank(s); "
                    + "nlist=\(nlist) \(pqM > 0 ? "IVF-PQ m=\(pqM)" : "IVF-Flat") metric=\(metric)")
            var index = try IVFIndex(d: d, parameters: parameters)
            try index.train(x, comm: comm)
            let tTrain = Date()
            comm.log(String(format: "trained in %.2fs", tTrain.timeIntervalSince(tRead)))
            try addInBatches(
                &index, x: x, ids: ids, total: total, batch: Swift.max(1, addBatch), comm: comm)
            let tAdd = Date()
            try index.save(to: output, comm: comm, producer: "mosaic index build")
            let tSave = Date()
            let bytes = ((try? FileManager.default.attributesOfItem(atPath: output))?[.size] as? Int) ?? 0
            if comm.isRoot {
                print(
                    String(
                        format:
                            "INDEX BUILT ntotal=%d d=%d nlist=%d m=%d ranks=%d read=%.3f train=%.3f add=%.3f save=%.3f seconds=%.3f bytes=%d",
                        total, d, nlist, pqM, comm.size, tRead.timeIntervalSince(t0), tTrain.timeIntervalSince(tRead),
                        tAdd.timeIntervalSince(tTrain), tSave.timeIntervalSince(tAdd), tSave.timeIntervalSince(t0),
                        bytes))
            }
        }
    }
}

struct IndexSearch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Search an index with a batch of queries; each rank loads and scans only its shard.",
        discussion: """
            Results (labels int64 (nq, k), distances float32 (nq, k)) are merged over ranks and \
            written by rank 0 to --output. With --ground-truth, prints recall@k. Prints \
            `SEARCH …` on rank 0 with the query rate and a digest of the labels.
            """)

    @Option(help: "Index file written by `mosaic index build`.") var index: String
    @Option(help: "HDF5 file holding the queries.") var queries: String
    @Option(help: "Dataset of the queries: float32, shape (nq, d).") var dataset = "queries"
    @Option(help: "Results per query.") var k = 10
    @Option(help: "Inverted lists visited per query.") var nprobe = 8
    @Option(help: "IVF-PQ with kept vectors: re-rank the best k × this many candidates exactly (0 = off).")
    var refineFactor = 0
    @Option(help: "Search threads per rank.") var threads = 1
    @Option(help: "Output HDF5 file for labels and distances (omit to skip).") var output: String?
    @Option(help: "Dataset in --queries with the true neighbour ids, int64 (nq, ≥ k), to print recall@k.")
    var groundTruth: String?

    func run() throws {
        Communicator.runJob { comm in
            BLAS.setThreads(1)
            let ivf = try IVFIndex.load(from: index, comm: comm)
            let qfile = try H5File(path: queries, mode: .read)
            let q = try qfile.root.dataset(dataset, of: Float.self, shape: [nil, ivf.d]).read(as: Float.self)
            let nq = q.count / ivf.d
            comm.log(
                "index search: \(nq) queries, k=\(k), nprobe=\(nprobe) over \(comm.size) shard(s); this shard holds lists \(ivf.ownedLists), \(ivf.count) vectors"
            )
            try comm.barrier()
            let t0 = Date()
            let params = SearchParameters(nprobe: nprobe, refineFactor: refineFactor, threads: threads)
            let (distances, labels) = try ivf.search(q, k: k, parameters: params, comm: comm)
            let seconds = Date().timeIntervalSince(t0)
            var recallText = ""
            if let gt = groundTruth {
                let ds = try qfile.root.dataset(gt, of: Int64.self, shape: [nq, nil])
                guard ds.shape[1] >= k else {
                    throw ArtifactError(
                        file: queries, object: ds.path,
                        message: "expected at least k=\(k) columns, found \(ds.shape[1])")
                }
                let truth = try ds.read(as: Int64.self)
                recallText = String(
                    format: " recall@%d=%.4f", k,
                    ExactSearch.recall(found: labels, kFound: k, truth: truth, kTruth: ds.shape[1], k: k))
            }
            if comm.isRoot {
                if let output {
                    let out = try H5File(path: output, mode: .create)
                    try out.root.setAttribute("producer", "mosaic index search")
                    try out.root.setAttribute("index", index)
                    try out.root.setAttribute("nprobe", Int64(nprobe))
                    try out.root.write("labels", labels, shape: [nq, k])
                    try out.root.write("distances", distances, shape: [nq, k])
                }
                var digest: UInt64 = 1469598103934665603
                for l in labels { digest = (digest ^ UInt64(bitPattern: l)) &* 1099511628211 }
                print(
                    String(
                        format: "SEARCH nq=%d k=%d nprobe=%d ranks=%d seconds=%.4f qps=%.0f%@ digest=%016llx", nq, k,
                        nprobe, comm.size,
                        seconds, Double(nq) / Swift.max(seconds, 1e-9), recallText as NSString, digest))
            }
        }
    }
}

struct IndexAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add",
        abstract: "Add fresh vectors to an existing index without retraining or rebuilding it.",
        discussion:
            "Each rank loads its shard, reads its slice of --input, vectors go to their list's shard, and the index is rewritten."
    )

    @Option(help: "Index file to update.") var index: String
    @OptionGroup var source: VectorInput
    @Option(help: "Where to write the updated index (default: replace --index).") var output: String?
    @Option(help: "Vectors added per collective round.") var addBatch = 262_144

    func run() throws {
        Communicator.runJob { comm in
            BLAS.setThreads(1)
            var ivf = try IVFIndex.load(from: index, comm: comm)
            let (x, ids, d, total, _) = try source.readSlice(comm: comm)
            guard d == ivf.d else {
                throw ArtifactError(
                    file: source.input, object: "/\(source.dataset)",
                    message: "expected vectors of d=\(ivf.d) (the index's), found d=\(d)")
            }
            let before = Int(try comm.allreduce(Int64(ivf.count)))
            try addInBatches(
                &ivf, x: x, ids: ids, total: total, batch: Swift.max(1, addBatch), comm: comm)
            try ivf.save(to: output ?? index, comm: comm, producer: "mosaic index add")
            let after = Int(try comm.allreduce(Int64(ivf.count)))
            if comm.isRoot { print("INDEX ADDED added=\(after - before) ntotal=\(after)") }
        }
    }
}

struct IndexRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove",
        abstract: "Remove ids from an index (id map lookup, no scan of the lists).")

    @Option(help: "Index file to update.") var index: String
    @Option(parsing: .upToNextOption, help: "Ids to remove.") var ids: [Int64]
    @Option(help: "Where to write the updated index (default: replace --index).") var output: String?

    func run() throws {
        Communicator.runJob { comm in
            var ivf = try IVFIndex.load(from: index, comm: comm)
            let removed = try ivf.remove(ids: ids, comm: comm)
            try ivf.save(to: output ?? index, comm: comm, producer: "mosaic index remove")
            let after = Int(try comm.allreduce(Int64(ivf.count)))
            if comm.isRoot { print("INDEX REMOVED removed=\(removed) ntotal=\(after)") }
        }
    }
}

import Artifacts
import ArgumentParser
import Collective
import Foundation
import Index
import Linalg

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
    @Flag(
        help:
            "Each rank searches its block of the queries (`searchOwn`: a query goes only to the shards owning its probed lists); no IVF-PQ re-ranking."
    )
    var own = false

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
            var (distances, labels) = ([Float](), [Int64]())
            if own {
                let lo = nq * comm.rank / comm.size, hi = nq * (comm.rank + 1) / comm.size
                let mine = try ivf.searchOwn(Array(q[lo * ivf.d..<hi * ivf.d]), k: k, parameters: params, comm: comm)
                (distances, labels) = (try comm.allgatherv(mine.distances).0, try comm.allgatherv(mine.labels).0)
            } else {
                (distances, labels) = try ivf.search(q, k: k, parameters: params, comm: comm)
            }
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

import Artifacts
import ArgumentParser
import Collective
import Foundation
import Index
import Linalg
import Publishing

struct IndexBuild: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Train (distributed k-means) and fill an IVF-Flat or IVF-PQ index; write it to HDF5.",
        discussion: """
            Input: an HDF5 dataset (--input) or the pin embeddings of a `mosaic pinsage embed` run \
            (--embeddings RUN, its shards read in order as one table; ids are pin ids). \
            Each rank reads a contiguous slice of the input rows (hyperslab), k-means runs \
            data-parallel with allreduce, and each vector is sent to the rank owning its list \
            (alltoallv). The output is one HDF5 file (schema mosaic.ivf v1) whose lists are in \
            list-id order: --output FILE, or the artifact `index/ivf.h5` of a run published \
            atomically under --out ROOT (its manifest records the input and the embedding model). \
            Prints `INDEX BUILT …` with timings on rank 0.
            """)

    @OptionGroup var source: VectorInput
    @Option(help: "Output index file (HDF5); or publish it as a run with --out.") var output: String?
    @Option(help: "Root folder of index runs: publishes the artifact `index/ivf.h5` in run --run-id.")
    var out: String?
    @Option(help: "Run id of the index run (with --out).") var runID = "index"
    @Option(
        help:
            "Inverted lists (coarse centroids); 0 = about √(vectors), the content channel's rule (on 34,000 PinSage vectors it beat 1,024: docs/retrieval.md)."
    )
    var nlist = 0
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

    func validate() throws {
        guard nlist >= 0 else { throw ValidationError("--nlist must be ≥ 0 (0 = about √ of the vector count)") }
        guard (output == nil) != (out == nil) else {
            throw ValidationError("pass exactly one of --output FILE and --out ROOT")
        }
    }

    /// The IVF settings for `total` vectors.
    func parameters(total: Int) throws -> IVFParameters {
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
        let lists = nlist > 0 ? nlist : max(1, Int(Double(total).squareRoot().rounded()))
        return IVFParameters(
            nlist: lists, metric: metric, pqM: pqM, keepVectors: keepVectors, kmeans: km, pqKMeans: pqKM)
    }

    func run() throws {
        _ = try parameters(total: 1)  // option errors before MPI starts
        Communicator.runJob { comm in
            BLAS.setThreads(threads)
            let t0 = Date()
            let (x, ids, d, total, _, modelVersion) = try source.readSlice(comm: comm)
            let tRead = Date()
            let parameters = try parameters(total: total)
            comm.log(
                "index build: \(total) vectors of d=\(d) from \(source.description) on \(comm.size) rank(s); "
                    + "nlist=\(parameters.nlist) \(pqM > 0 ? "IVF-PQ m=\(pqM)" : "IVF-Flat") metric=\(metric)")
            var index = try IVFIndex(d: d, parameters: parameters)
            try index.train(x, comm: comm)
            let tTrain = Date()
            comm.log(String(format: "trained in %.2fs", tTrain.timeIntervalSince(tRead)))
            try addInBatches(
                &index, x: x, ids: ids, total: total, batch: Swift.max(1, addBatch), comm: comm)
            let tAdd = Date()
            var run: RunWriter? = nil
            var path = output ?? ""
            if let out {
                var config = [
                    "nlist": "\(parameters.nlist)", "metric": metric, "pq_m": "\(pqM)", "input": source.description,
                ]
                if let modelVersion { config["model_version"] = modelVersion }
                run = try RunWriter(
                    root: URL(fileURLWithPath: out), runID: runID, producer: "mosaic index build", config: config,
                    comm: comm)
                path = try run!.filePath(artifact: "index", name: "ivf.h5")
            }
            try index.save(to: path, comm: comm, producer: "mosaic index build")
            let bytes = ((try? FileManager.default.attributesOfItem(atPath: path)) ?? [:])[.size] as? Int ?? 0
            if let run {
                if comm.isRoot { try run.record(artifact: "index", path: path, rows: total) }
                try run.commit()
            }
            let tSave = Date()
            if comm.isRoot {
                print(
                    String(
                        format:
                            "INDEX BUILT ntotal=%d d=%d nlist=%d m=%d ranks=%d read=%.3f train=%.3f add=%.3f save=%.3f seconds=%.3f bytes=%d",
                        total, d, parameters.nlist, pqM, comm.size, tRead.timeIntervalSince(t0),
                        tTrain.timeIntervalSince(tRead),
                        tAdd.timeIntervalSince(tTrain), tSave.timeIntervalSince(tAdd), tSave.timeIntervalSince(t0),
                        bytes))
            }
        }
    }
}

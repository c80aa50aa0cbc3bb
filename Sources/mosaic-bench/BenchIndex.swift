import Artifacts
import ArgumentParser
import Collective
import Foundation
import ProcessKit
import Index
import Linalg

/// `mosaic-bench index`: IVF-Flat and IVF-PQ beside faiss-cpu on the same generated vectors.
struct BenchIndex: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract:
            "IVF-Flat / IVF-PQ build time, index bytes, recall@k and queries/s beside faiss-cpu (same data, same run).",
        discussion: """
            Generates n clustered vectors (seeded; cached in --work-dir), exact ground truth for nq \
            queries, then builds and searches Mosaic's index in this process and faiss-cpu's \
            IndexIVFFlat / IndexIVFPQ through Cluster/bench/index_peer.py with the same nlist, m, \
            k-means iterations, nprobe and thread count. Then times `mosaic index build` under \
            mpirun with 1 and --ranks ranks. Use Cluster/bench/index.sh, which makes the venv.
            """)

    @Option(help: "Base vectors.") var n = 1_000_000
    @Option(help: "Dimension.") var d = 64
    @Option(help: "Queries (also the QPS batch).") var nq = 2000
    @Option(help: "Gaussian clusters in the generated data.") var clusters = 1000
    @Option(help: "Noise standard deviation around cluster centres (centres are N(0, 1)).") var noise = 0.6
    @Option(help: "Inverted lists.") var nlist = 1024
    @Option(help: "IVF-PQ sub-quantisers (8 bits each).") var pqM = 16
    @Option(help: "Comma-separated nprobe values.") var nprobe = "1,4,8,16,32,64"
    @Option(help: "Results per query (recall@k).") var k = 10
    @Option(help: "k-means iterations (both sides).") var iterations = 10
    @Option(help: "Threads for both sides (OpenBLAS / OpenMP and search).") var threads = 1
    @Option(help: "Search repetitions; the best is reported (both sides).") var repeats = 2
    @Option(
        help:
            "Mosaic: queries per search block ((query, list) pairs are grouped by list within a block); default: the library's."
    )
    var queryBlock: Int?
    @Option(help: "Data seed.") var seed: UInt64 = 42
    @Option(help: "Folder for the data file and indexes.") var workDir = "/tmp/mosaic-bench-index"
    @Option(help: "Python with faiss-cpu, h5py, numpy (omit to run Mosaic only).") var peerPython: String?
    @Option(help: "Peer script.") var peerScript = "Cluster/bench/index_peer.py"
    @Option(help: "Peer runs: 2 runs it before and after Mosaic and keeps its best figures; 1 only after.")
    var peerRuns = 2
    @Option(help: "Ranks for the distributed build comparison against 1 rank (0 = skip).") var ranks = 2
    @Option(
        help:
            "Distributed build runs per rank count, in alternating order (1, r, r, 1, …); the fastest of each is reported."
    )
    var distRuns = 2

    func run() throws {
        let comm = try Communicator.world()
        BLAS.setThreads(threads)
        try FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true)
        let dataPath = "\(workDir)/data-n\(n)-d\(d)-q\(nq)-c\(clusters)-noise\(noise)-s\(seed)-k\(k).h5"
        if !FileManager.default.fileExists(atPath: dataPath) { try generate(dataPath) }
        let file = try H5File(path: dataPath, mode: .read)
        let xb = try file.root.read("vectors", as: Float.self)
        let xq = try file.root.read("queries", as: Float.self)
        let gt = try file.root.read("ground_truth", as: Int64.self)
        let ids = (0..<n).map(Int64.init)
        let probes = nprobe.split(separator: ",").compactMap { Int($0) }
        log("data: \(dataPath)")

        struct Row { var recall: Double; var qps: Double }
        // The peer, on the same file: once before Mosaic (when --peer-runs ≥ 2) and once after;
        // per figure the best of its runs (shortest build, highest QPS) is reported.
        var peerBuild: [String: (Double, Int)] = [:]
        var peerSearch: [String: [Int: Row]] = [:]
        var peerName = "faiss-cpu (not run)"
        var peerSIMD = "?"
        func runPeer() throws {
            guard let python = peerPython else { return }
            let r = try runProcess(
                python,
                [
                    peerScript, "--data", dataPath, "--nlist", "\(nlist)", "--m", "\(pqM)", "--k", "\(k)",
                    "--iterations", "\(iterations)", "--threads", "\(threads)", "--nprobe", nprobe,
                    "--repeats", "\(repeats)",
                ])
            guard r.status == 0 else { throw IndexError("peer failed (status \(r.status)):\n\(r.stderr)") }
            for line in r.stdout.split(separator: "\n") {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    continue
                }
                if let v = obj["version"] as? String { peerName = "faiss-cpu \(v)" }
                if let simd = obj["simd"] as? String { peerSIMD = simd }
                guard let kind = obj["index"] as? String else { continue }
                if obj["phase"] as? String == "build" {
                    let seconds = (obj["seconds"] as? Double) ?? .nan
                    peerBuild[kind] = (Swift.min(seconds, peerBuild[kind]?.0 ?? .infinity), (obj["bytes"] as? Int) ?? 0)
                } else if let np = obj["nprobe"] as? Int {
                    let qps = Swift.max((obj["qps"] as? Double) ?? 0, peerSearch[kind]?[np]?.qps ?? 0)
                    peerSearch[kind, default: [:]][np] = Row(recall: (obj["recall"] as? Double) ?? 0, qps: qps)
                }
            }
        }

        if peerRuns >= 2 { try runPeer() }

        var mosaicBuild: [String: (Double, Int)] = [:]
        var mosaicSearch: [String: [Int: Row]] = [:]
        for kind in ["IVFFlat", "IVFPQ"] {
            var km = KMeansParameters(iterations: iterations, tolerance: 0, seed: 1234, initialization: .random)
            km.maxPointsPerCentroid = 256
            var pkm = km
            pkm.seed = 4321
            let p = IVFParameters(nlist: nlist, metric: .l2, pqM: kind == "IVFPQ" ? pqM : 0, kmeans: km, pqKMeans: pkm)
            var index = try IVFIndex(d: d, parameters: p)
            let t0 = now()
            try index.train(xb, comm: comm)
            let t1 = now()
            try index.add(xb, ids: ids, comm: comm)
            let t2 = now()
            let path = "\(workDir)/mosaic-\(kind).h5"
            try index.save(to: path, comm: comm)
            let bytes = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
            mosaicBuild[kind] = (t2 - t0, bytes)
            log(String(format: "Mosaic %@: train %.2fs add %.2fs, %d bytes", kind, t1 - t0, t2 - t1, bytes))
            for np in probes {
                var best = Double.infinity
                var labels: [Int64] = []
                for _ in 0..<Swift.max(1, repeats) {
                    let s0 = now()
                    labels = try index.search(
                        xq, k: k,
                        parameters: SearchParameters(
                            nprobe: np, threads: threads, queryBlock: queryBlock ?? SearchParameters().queryBlock)
                    )
                    .labels
                    best = Swift.min(best, now() - s0)
                }
                let recall = ExactSearch.recall(found: labels, kFound: k, truth: gt, kTruth: k, k: k)
                mosaicSearch[kind, default: [:]][np] = Row(recall: recall, qps: Double(nq) / best)
                log(
                    String(
                        format: "Mosaic %@ nprobe=%d: recall@%d %.4f, %.0f QPS", kind, np, k, recall, Double(nq) / best)
                )
            }
        }

        // The peer once more after Mosaic (the machine's load drifts; faiss keeps its best run).
        try runPeer()

        // Distributed build: mosaic index build under mpirun, 1 rank vs `ranks`.
        var distributed: [(Int, String)] = []
        var capacity: [Double] = []
        if ranks > 1, let mpirun = ChildProcess.which("mpirun") {
            capacity.append(Self.measureCapacity())
            var best: [Int: String] = [:]
            for rep in 0..<Swift.max(1, distRuns) {
                for np in rep % 2 == 0 ? [1, ranks] : [ranks, 1] {
                    var args = ["-np", "\(np)", "--oversubscribe", "--bind-to", "none"]
                    if getuid() == 0 { args.append("--allow-run-as-root") }
                    args += [
                        "-x", "OPENBLAS_NUM_THREADS", mosaicExecutable, "index", "build", "--input", dataPath,
                        "--output", "\(workDir)/dist-\(np).h5", "--nlist", "\(nlist)", "--iterations", "\(iterations)",
                        "--tolerance", "0", "--threads", "1",
                    ]
                    let r = try runProcess(mpirun, args)
                    guard r.status == 0,
                        let line = r.stdout.split(separator: "\n").first(where: { $0.hasPrefix("INDEX BUILT") })
                    else {
                        throw IndexError("mpirun -np \(np) mosaic index build failed:\n\(r.stdout)\(r.stderr)")
                    }
                    log(String(line))
                    if best[np].map({ field($0, "seconds") > field(String(line), "seconds") }) ?? true {
                        best[np] = String(line)
                    }
                }
            }
            capacity.append(Self.measureCapacity())
            distributed = [(1, best[1]!), (ranks, best[ranks]!)]
        }

        // Tables.
        print(
            "\n## IVF index, \(n) × \(d) clustered vectors (\(clusters) clusters, noise \(noise)), \(nq) queries, k = \(k)"
        )
        print(
            "nlist = \(nlist), PQ m = \(pqM) × 8 bits; threads = \(threads) on both sides; peer: \(peerName) (compiled \(peerSIMD)), best of \(peerRuns) run(s) bracketing Mosaic's; Mosaic distance kernels: \(indexKernelLevel)"
        )
        print(
            "Training, the same on both sides: coarse k-means \(iterations) iterations, random init, on \(Swift.min(n, 256 * nlist)) sampled vectors (≤ 256 per centroid); PQ k-means \(iterations) iterations per sub-quantiser on \(Swift.min(n, 256 * 256)) sampled residuals (faiss: IndexIVFPQ::train_encoder_num_vectors = pq.cp.max_points_per_centroid × ksub = 256 × 256)\n"
        )
        print(
            "| index | Mosaic build s | \(peerName) build s | build speed Mosaic / faiss | Mosaic bytes | faiss bytes |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for kind in ["IVFFlat", "IVFPQ"] {
            let (ms, mb) = mosaicBuild[kind]!
            let (fs, fb) = peerBuild[kind] ?? (.nan, 0)
            print(
                String(
                    format: "| %@ | %.2f | %.2f | %.2f× | %@ | %@ |", kind, ms, fs, fs / ms, formatBytes(mb),
                    formatBytes(fb)))
        }
        print(
            "\n| index | nprobe | Mosaic recall@\(k) | faiss recall@\(k) | Mosaic QPS | faiss QPS | QPS Mosaic / faiss |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for kind in ["IVFFlat", "IVFPQ"] {
            for np in probes {
                let a = mosaicSearch[kind]![np]!
                let b = peerSearch[kind]?[np] ?? Row(recall: .nan, qps: .nan)
                print(
                    String(
                        format: "| %@ | %d | %.4f | %.4f | %.0f | %.0f | %.2f× |", kind, np, a.recall, b.recall, a.qps,
                        b.qps, a.qps / b.qps))
            }
        }
        if !distributed.isEmpty {
            print(
                "\n`mosaic index build` IVF-Flat under mpirun, 1 BLAS thread per rank (seconds; total = read + train + add + write; fastest of \(Swift.max(1, distRuns)) alternating run(s) per rank count):\n"
            )
            print("| ranks | read | train | add | write | total | speed-up vs 1 rank |")
            print("|---:|---:|---:|---:|---:|---:|---:|")
            let base = field(distributed[0].1, "seconds")
            for (np, line) in distributed {
                print(
                    String(
                        format: "| %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f× |", np, field(line, "read"),
                        field(line, "train"),
                        field(line, "add"), field(line, "save"), field(line, "seconds"), base / field(line, "seconds")))
            }
            print(
                String(
                    format:
                        "\nCPU actually available to this run (2 threads of a fixed loop vs 1), before and after the mpirun runs: %.2f and %.2f cores",
                    capacity[0], capacity[capacity.count - 1]))
        }
    }

    /// A `name=value` figure from a job's summary line.
    func field(_ line: String, _ name: String) -> Double {
        for part in line.split(separator: " ") where part.hasPrefix(name + "=") {
            return Double(part.dropFirst(name.count + 1)) ?? .nan
        }
        return .nan
    }

    /// Cores this process can really use right now (the machine is shared): the throughput of
    /// two threads running a fixed integer loop, relative to one.
    static func measureCapacity() -> Double {
        @Sendable func spin() -> Double {
            let t0 = now()
            var x: UInt64 = 1
            for i in 0..<300_000_000 as Range<UInt64> { x = x &* 6364136223846793005 &+ i }
            if x == 42 { print("") }  // keeps the loop alive
            return now() - t0
        }
        let one = spin()
        let times = UnsafeMutablePointer<Double>.allocate(capacity: 2)
        defer { times.deallocate() }
        nonisolated(unsafe) let out = times
        DispatchQueue.concurrentPerform(iterations: 2) { out[$0] = spin() }
        return 2 * one / Swift.max(times[0], times[1])
    }

    func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

    /// Seeded clustered data: row i draws its cluster and noise from stream (seed, index: i).
    func generate(_ path: String) throws {
        log("generating \(n) × \(d) vectors and \(nq) queries, then exact ground truth …")
        var centres = [Float](repeating: 0, count: clusters * d)
        for c in 0..<clusters {
            var rng = RandomStream(seed: seed, rank: 1, index: UInt64(c))
            for j in 0..<d { centres[c * d + j] = Float(rng.normal()) }
        }
        func rows(_ range: Range<Int>) -> [Float] {
            var out = [Float](repeating: 0, count: range.count * d)
            for (r, i) in range.enumerated() {
                var rng = RandomStream(seed: seed, index: UInt64(i))
                let c = rng.int(below: clusters)
                for j in 0..<d { out[r * d + j] = centres[c * d + j] + Float(noise * rng.normal()) }
            }
            return out
        }
        let xb = rows(0..<n), xq = rows(n..<(n + nq))
        let t0 = now()
        let gt = ExactSearch.search(base: xb, queries: xq, d: d, k: k).labels
        log(String(format: "ground truth in %.1fs", now() - t0))
        let tmp = path + ".tmp"
        let f = try H5File(path: tmp, mode: .create)
        try f.root.write("vectors", xb, shape: [n, d])
        try f.root.write("queries", xq, shape: [nq, d])
        try f.root.write("ground_truth", gt, shape: [nq, k])
        try f.root.setAttribute(
            "generator", "mosaic-bench index: \(clusters) N(0,1) centres, noise \(noise), seed \(seed)")
        try f.flush()
        try FileManager.default.moveItem(atPath: tmp, toPath: path)
    }

    /// Runs a child with a clean MPI environment and `OMP_NUM_THREADS` = `--threads`,
    /// forwarding its progress (stderr) while it runs.
    func runProcess(_ executable: String, _ arguments: [String]) throws -> ChildProcess.Result {
        try ChildProcess.run(
            executable, arguments, environment: ["OMP_NUM_THREADS": "\(threads)"], forwardStderr: true)
    }
}

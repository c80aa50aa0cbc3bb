import ArgumentParser
import Artifacts
import Collective
import Evaluation
import Events
import Foundation
import Graph
import Linalg

/// `mosaic graph evaluate`: next-item retrieval on S3-Rec Beauty by nearest neighbours of the
/// user's recent items (full ranking, leave-one-out, as s3rec-beauty/README.md says).
struct GraphEvaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract:
            "Full-ranking HR/NDCG on S3-Rec Beauty: item neighbours of the user's recent items (walks, PinSage, baselines).",
        discussion: """
            Leave-one-out: the last item of each user is the test target, the second last the validation target. \
            The query is the user's last --recent input items (test input = seq[:-1]), weighted 1, 1/2, 1/3, … from \
            the most recent; an item's score is the weighted sum of its similarity to them. All 12,101 items are \
            ranked; the input items are removed (the README protocol); ties count as the average rank. Methods: \
            co-occurrence (cosine of item co-occurrence in the training prefixes seq[:-2]), content (cosine of the \
            attribute multi-hots), walks (importance weights of --walks neighbours; the graph must be built with \
            --hold-out 2) and pinsage (dot products of --embeddings vectors). Users are split over the ranks.
            """)

    @Option(help: "Folder with s3rec-beauty/ (default: $MOSAIC_SHARED or ../shared/data).") var shared: String?
    @Option(help: "Walks run root (importance neighbours), optional.") var walks: String?
    @Option(help: "PinSage embeddings run root, optional.") var embeddings: String?
    @Option(help: "Recent input items used as the query.") var recent = 3
    @Option(help: "Evaluate on test (default) or validation targets.") var split = "test"

    func run() throws {
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        Communicator.runJob { comm in
            let t0 = now()
            guard let root = shared.map({ URL(fileURLWithPath: $0) }) ?? SharedData.root(packageRoot: packageRoot)
            else {
                throw ValidationError("no shared data: pass --shared DIR or set MOSAIC_SHARED")
            }
            let dir = root.appendingPathComponent("s3rec-beauty")
            var sequences: [[Int]] = []
            let text = try String(contentsOf: dir.appendingPathComponent("Beauty.txt"), encoding: .utf8)
            for line in text.split(separator: "\n") {
                let f = line.split(separator: " ").compactMap { Int($0) }
                sequences.append(Array(f.dropFirst()))
            }
            let n = sequences.flatMap { $0 }.max()!
            let isTest = split == "test"
            // Training prefixes: co-occurrence counts (user = basket).
            var count = [Double](repeating: 0, count: n + 1)
            var co = [[Int: Double]](repeating: [:], count: n + 1)
            for s in sequences {
                let train = Array(Set(s.dropLast(2)))
                for i in train {
                    count[i] += 1
                    for j in train where j != i { co[i][j, default: 0] += 1 }
                }
            }
            // Attribute multi-hots.
            let json =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: dir.appendingPathComponent("Beauty_item2attributes.json")))
                as! [String: [Int]]
            var tags = [[Int]](repeating: [], count: n + 1)
            var posting: [Int: [Int]] = [:]
            for (k, v) in json { if let i = Int(k), i <= n { tags[i] = Array(Set(v)).sorted() } }
            for i in 1...n { for a in tags[i] { posting[a, default: []].append(i) } }
            var walkNeighbors = [[(Int, Float)]](repeating: [], count: n + 1)
            if let walks {
                let nb = try ImportanceNeighbors.readAll(root: URL(fileURLWithPath: walks))
                for r in 0..<nb.pins.count where nb.pins[r] <= n {
                    walkNeighbors[Int(nb.pins[r])] = nb.neighbors(r).map { (Int($0.id), $0.weight) }
                }
            }
            var d = 0
            var z = [Float]()
            if let embeddings {
                for path in try PublishedRun.open(root: URL(fileURLWithPath: embeddings)).paths(of: "embeddings") {
                    let f = try H5File(path: path, mode: .read)
                    let g = try f.root.group("embeddings")
                    let ids = try g.read("pin_ids", as: Int64.self), v = try g.read("vectors", as: Float.self)
                    if ids.isEmpty { continue }
                    d = v.count / ids.count
                    if z.isEmpty { z = [Float](repeating: 0, count: (n + 1) * d) }
                    for (r, id) in ids.enumerated() where id <= n {
                        for c in 0..<d { z[Int(id) * d + c] = v[r * d + c] }
                    }
                }
            }
            var methods = ["co-occurrence", "content"]
            if walks != nil { methods.append("walks") }
            if embeddings != nil { methods.append("pinsage") }
            var acc = methods.map { _ in RankAccumulator(cutoffs: [5, 10, 20]) }
            var scores = [Float](repeating: 0, count: n + 1)
            for (u, s) in sequences.enumerated() where u % comm.size == comm.rank {
                let input = Array(s.dropLast(isTest ? 1 : 2))
                let target = isTest ? s[s.count - 1] : s[s.count - 2]
                let exclude = Set(input).union([0])
                let query = Array(input.suffix(recent).reversed())  // most recent first
                for (m, method) in methods.enumerated() {
                    for i in 0...n { scores[i] = 0 }
                    for (k, i) in query.enumerated() {
                        let w = 1 / Float(k + 1)
                        switch method {
                        case "co-occurrence":
                            for (j, c) in co[i] { scores[j] += w * Float(c / (count[i] * count[j]).squareRoot()) }
                        case "content":
                            let ni = Float(max(1, tags[i].count)).squareRoot()
                            for a in tags[i] {
                                for j in posting[a] ?? [] {
                                    scores[j] += w / (ni * Float(max(1, tags[j].count)).squareRoot())
                                }
                            }
                        case "walks":
                            for (j, wt) in walkNeighbors[i] where j <= n { scores[j] += w * wt }
                        default:
                            z.withUnsafeBufferPointer { zp in
                                scores.withUnsafeMutableBufferPointer { sp in
                                    BLAS.gemv(
                                        .none, m: n + 1, n: d, alpha: w, a: zp.baseAddress!, lda: d,
                                        x: zp.baseAddress! + i * d, beta: 1, y: sp.baseAddress!)
                                }
                            }
                        }
                    }
                    acc[m].add(
                        rank: RankingProtocol.fullRank(scores: scores, target: target, exclude: exclude, ties: .average)
                    )
                }
            }
            comm.log(String(format: "graph evaluate: %d users, %d items, %.1fs", sequences.count, n, now() - t0))
            var table =
                "| method (\(split), full ranking, \(sequences.count) users) | HR@5 | NDCG@5 | HR@10 | NDCG@10 | HR@20 | NDCG@20 |\n|---|---|---|---|---|---|---|\n"
            for (m, method) in methods.enumerated() {
                var sums = acc[m].sums
                try comm.allreduce(&sums, op: .sum)
                let a = RankAccumulator(cutoffs: [5, 10, 20], sums: sums)
                table += String(
                    format: "| %@ | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f |\n", method, a.hitRate(5), a.ndcg(5),
                    a.hitRate(10), a.ndcg(10), a.hitRate(20), a.ndcg(20))
            }
            table +=
                "| SASRec (published) | 0.0387 | 0.0249 | 0.0605 | 0.0318 | 0.0902 | 0.0394 |\n| S3-Rec (published) | 0.0387 | 0.0244 | 0.0647 | 0.0327 | 0.0994 | 0.0414 |\n"
            if comm.isRoot { print(table, terminator: "") }
        }
    }
}

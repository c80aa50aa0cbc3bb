import Artifacts
import Foundation
import Linalg
import Ranking
import Testing
import _TestSupport

/// A synthetic CTR CSV with a known logistic truth over 4 fields (ids < 60).
func writeSyntheticCSV(_ path: String, rows: Int, seed: UInt64) throws {
    var rng = RandomStream(seed: seed)
    var weight = [Double](repeating: 0, count: 60)
    var wr = RandomStream(seed: 99)
    for i in weight.indices { weight[i] = wr.normal() }
    var text = "label,a,b,c,d\n"
    for _ in 0..<rows {
        let ids = (0..<4).map { f in f * 15 + rng.int(below: 15) }
        var z = weight[ids[0]] * weight[ids[1]] + weight[ids[2]] - weight[ids[3]]
        z = 1 / (1 + exp(-2 * z))
        text += "\(rng.uniform() < z ? 1 : 0)," + ids.map(String.init).joined(separator: ",") + "\n"
    }
    try text.write(toFile: path, atomically: true, encoding: .utf8)
}

func savedParameters(_ path: String) throws -> [Float] {
    let root = try H5File(path: path, mode: .read).root
    var out = try root.read("parameters", as: Float.self)
    let tables = try root.group("tables")
    for name in try tables.names().sorted() { out += try tables.group(name).read("values", as: Float.self) }
    return out
}

@Suite("Ranker training under mpirun", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct RankerTrainingTests {
    @Test("1, 2 and 4 ranks train the same ranker (DCN-v2 + MMoE and LR); the model learns; score reloads it")
    func rankCountIndependence() throws {
        let dir = try MPIRun.temporaryDirectory("ranker-dp")
        let train = dir.appendingPathComponent("train.csv").path
        let valid = dir.appendingPathComponent("valid.csv").path
        try writeSyntheticCSV(train, rows: 3000, seed: 1)
        try writeSyntheticCSV(valid, rows: 1000, seed: 2)
        for arch in ["dcn-mmoe", "lr"] {
            var params: [Int: [Float]] = [:]
            for ranks in [1, 2, 4] {
                let out = dir.appendingPathComponent("\(arch)-\(ranks).h5").path
                let r = try MPIRun.mosaic(
                    ranks: ranks,
                    [
                        "ranker", "train", "--train", train, "--valid", valid, "--test", valid, "--architecture", arch,
                        "--dim", "4", "--expert-widths", "16,8", "--cross-layers", "2", "--epochs", "3",
                        "--batch-size", "256", "--lr", "0.01", "--dropout", "0.1", "--out", out,
                    ])
                #expect(r.status == 0, "\(r.output)")
                #expect(r.stdout.contains("RANKER TRAIN ranks=\(ranks) arch=\(arch)"), "\(r.output)")
                // Each rank holds only its block of every CSV: 3,000 + 1,000 + 1,000 rows over all.
                let perRank = try #require(
                    r.stdout.split(separator: " ").first { $0.hasPrefix("rows_per_rank=") }, "\(r.output)"
                ).dropFirst("rows_per_rank=".count).split(separator: ",").compactMap { Int($0) }
                #expect(perRank.count == ranks && perRank.reduce(0, +) == 5000, "\(perRank)")
                #expect(perRank.allSatisfy { abs($0 - 5000 / ranks) < 60 }, "rows per rank \(perRank)")
                params[ranks] = try savedParameters(out)
                // It learned the synthetic truth well above chance.
                let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("| test |") })
                let auc = try #require(Double(line.split(separator: "|")[2].trimmingCharacters(in: .whitespaces)))
                #expect(auc > 0.7, "\(arch) test AUC \(auc)")
                if ranks == 1 {
                    var written: [String] = []
                    for scoreRanks in [1, 3] {
                        let csv = dir.appendingPathComponent("\(arch)-scores-\(scoreRanks).csv").path
                        let s = try MPIRun.mosaic(
                            ranks: scoreRanks, ["ranker", "score", "--model", out, "--data", valid, "--out", csv])
                        #expect(s.status == 0, "\(s.output)")
                        #expect(s.stdout.contains("RANKER SCORE rows=1000 "), "\(s.output)")
                        #expect(
                            s.stdout.contains(String(format: "click_auc=%.4f", auc)), "\(scoreRanks) ranks: \(s.output)"
                        )
                        written.append(try String(contentsOfFile: csv, encoding: .utf8))
                    }
                    // The ranks append their blocks in order: the file does not depend on the rank
                    // count (up to float rounding: a row's batch differs, so the gemm blocking does).
                    let rows = written.map { $0.split(separator: "\n") }
                    #expect(rows[0].count == 1001 && rows[1].count == 1001 && rows[0][0] == rows[1][0])
                    for (a, b) in zip(rows[0].dropFirst(), rows[1].dropFirst()) {
                        let x = a.split(separator: ",").compactMap { Double($0) }
                        let y = b.split(separator: ",").compactMap { Double($0) }
                        #expect(
                            x.count == y.count && x[0] == y[0] && zip(x, y).allSatisfy { abs($0 - $1) < 1e-5 },
                            "\(a) vs \(b)")
                    }
                }
            }
            let a = try #require(params[1])
            for ranks in [2, 4] {
                let b = try #require(params[ranks])
                #expect(a.count == b.count)
                let d = zip(a, b).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
                #expect(d < 1e-4, "\(arch): 1 and \(ranks) ranks differ by \(d)")
            }
        }
    }

    @Test("a bad row in a sharded CSV is reported with its file row number, whatever the rank count")
    func shardedBadRow() throws {
        let dir = try MPIRun.temporaryDirectory("ranker-bad")
        let path = dir.appendingPathComponent("bad.csv").path
        try writeSyntheticCSV(path, rows: 400, seed: 3)
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(
            separator: "\n", omittingEmptySubsequences: false)
        lines[351] = "1,3,x,4,5"  // file row 352 (1-based, the header is row 1)
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        for ranks in [1, 2, 4] {
            let r = try MPIRun.mosaic(ranks: ranks, ["ranker", "train", "--train", path, "--epochs", "1"])
            #expect(r.status != 0)
            #expect(r.output.contains("bad.csv: row 352: field 'b' is 'x'"), "\(ranks) ranks: \(r.output)")
        }
    }

    @Test("Frappe (BARS x1): LR baseline on the first 30,000 rows beats chance clearly (skips without ../shared/data)")
    func frappeSmoke() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("../shared/data/frappe").standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: root + "/train.csv") else {
            print("SKIP frappeSmoke: \(root)/train.csv is absent")
            return
        }
        let r = try MPIRun.mosaic(
            ranks: 1,
            [
                "ranker", "train", "--frappe", root, "--architecture", "lr", "--epochs", "2", "--max-rows", "30000",
                "--lr", "0.01",
            ])
        #expect(r.status == 0, "\(r.output)")
        let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("| test | lr (ours)") })
        let auc = try #require(Double(line.split(separator: "|")[2].trimmingCharacters(in: .whitespaces)))
        #expect(auc > 0.85, "LR test AUC \(auc)")
    }
}

@Suite("Ranker on the synthetic world", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct RankerWorldTests {
    @Test(
        "`mosaic ranker world` trains LR (history crosses), DCN+DIN+SIM and DCN+transformer with skips on 1 and 2 ranks; same table; oracle row"
    )
    func worldSmall() throws {
        var outputs: [Int: String] = [:]
        for ranks in [1, 2] {
            let r = try MPIRun.mosaic(
                ranks: ranks,
                [
                    "ranker", "world", "--users", "120", "--days", "6", "--pins", "1500", "--fresh-pins", "50",
                    "--epochs", "1", "--max-steps-per-epoch", "6", "--batch-size", "256",
                    "--variants", "lr,dcn+din+sim-hard,dcn+transformer+skips", "--transformer-length", "12",
                ])
            #expect(r.status == 0, "\(r.output)")
            #expect(r.stdout.contains("RANKER WORLD ranks=\(ranks)"), "\(r.output)")
            #expect(r.stdout.contains("| oracle (true probabilities) |"), "\(r.output)")
            #expect(r.stdout.contains("| dcn+din+sim-hard: closeup logit, position nulled |"), "\(r.output)")
            outputs[ranks] = r.stdout.split(separator: "\n").filter { $0.hasPrefix("| ") }.joined(separator: "\n")
        }
        // The metrics agree to the printed 4 decimals (training is rank-count independent up to
        // float reduction order; allow differences only in the last digit).
        let a = try #require(outputs[1]), b = try #require(outputs[2])
        let na = a.split(whereSeparator: { "| \n".contains($0) }).compactMap { Double($0) }
        let nb = b.split(whereSeparator: { "| \n".contains($0) }).compactMap { Double($0) }
        #expect(na.count == nb.count && na.count > 10)
        for (x, y) in zip(na, nb) { #expect(abs(x - y) <= 2e-3, "1 vs 2 ranks: \(x) vs \(y)\n\(a)\n\(b)") }
    }
}

@Suite("Ranker on Amazon Games", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct RankerGamesTests {
    @Test(
        "`mosaic ranker games` runs the sampled-negatives protocol on the first 200 users (skips without ../shared/data)"
    )
    func gamesSmall() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("../shared/data/amazon-games/Video.txt")
            .standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: path) else {
            print("SKIP gamesSmall: \(path) is absent")
            return
        }
        let r = try MPIRun.mosaic(
            ranks: 1,
            [
                "ranker", "games", "--sequences", path, "--max-users", "200", "--eval-users", "60", "--valid-users",
                "40",
                "--epochs", "1", "--variants", "lr-nohist,dcn+sim", "--dim", "8",
            ])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.stdout.contains("RANKER GAMES ranks=1 users=200 test_users=60"), "\(r.output)")
        var hr: [String: Double] = [:]
        for name in ["lr-nohist", "dcn+sim"] {
            let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("| \(name) (ours)") })
            hr[name] = try #require(Double(line.split(separator: "|")[1].trimmingCharacters(in: .whitespaces)))
        }
        // 101 candidates: chance HR@10 is 10/101 ≈ 0.1. The LR without history learns item
        // popularity even from 200 users (measured 0.57 on this slice; with history crosses it
        // memorises this tiny slice: 0.27); the one-epoch DCN is only checked to run.
        #expect(try #require(hr["lr-nohist"]) > 0.3, "\(r.stdout)")
        #expect(try #require(hr["dcn+sim"]) >= 0, "\(r.stdout)")
    }
}

import Collective
import EventData
import Events
import Foundation
import Testing
import _TestSupport

let eventsHeader = "event_id,user_id,pin_id,event_type,timestamp_ms,position,surface,session_id"

/// `n` valid event rows with ids `first ..< first + n` (users 0…4), in the file in id order.
func goodEvents(_ ids: Range<Int>) -> [String] {
    ids.map { i in
        "\(i),\(i % 5),\(i % 7),\(EventType.allCases[i % 5].name),\(1_700_000_000_000 + (i * 7919) % 100_000),\(i % 10),home,\(i / 3)"
    }
}

@Suite("CSV ingest: validation and the bad-input matrix")
struct IngestTests {
    let dir: URL
    init() throws { dir = try MPIRun.temporaryDirectory("ingest") }

    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = dir.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
    func write(_ name: String, lines: [String]) throws -> String {
        try write(name, Array((lines.joined(separator: "\n") + "\n").utf8))
    }

    /// Imports `files` on this process's one-rank world.
    func ingest(_ files: [String: String]) throws -> Ingestor.Result {
        try Ingestor(files: files, maxRejectRate: 1).run(comm: try Communicator.world())
    }

    struct Case: Sendable, CustomStringConvertible {
        let name: String
        let badLine: [UInt8]
        let reason: RejectReason
        let field: String
        var description: String { name }
    }

    static let rowCases: [Case] = [
        Case(
            name: "wrong column count", badLine: Array("900,1,2,closeup,1700000000000,0,home".utf8),
            reason: .wrongColumnCount, field: ""),
        Case(
            name: "unknown event type", badLine: Array("900,1,2,like,1700000000000,0,home,4".utf8),
            reason: .unknownValue, field: "event_type"),
        Case(
            name: "non-numeric time", badLine: Array("900,1,2,save,yesterday,0,home,4".utf8), reason: .notAnInteger,
            field: "timestamp_ms"),
        Case(
            name: "negative id", badLine: Array("900,-1,2,save,1700000000000,0,home,4".utf8), reason: .outOfRange,
            field: "user_id"),
        Case(
            name: "unknown surface", badLine: Array("900,1,2,save,1700000000000,0,moon,4".utf8), reason: .unknownValue,
            field: "surface"),
        Case(
            name: "non-UTF-8 bytes",
            badLine: Array("900,1,2,save,1700000000000,0,".utf8) + [0xC3, 0x28] + Array(",4".utf8),
            reason: .invalidUTF8, field: ""),
        Case(
            name: "duplicate id", badLine: Array("7,1,2,save,1700000000000,0,home,4".utf8), reason: .duplicateID,
            field: "event_id"),
    ]

    @Test("each bad row gets its named reason, its line and field; no good row is lost", arguments: rowCases)
    func badRow(_ c: Case) throws {
        let good = goodEvents(0..<30)
        var bytes = Array((([eventsHeader] + good[0..<15]).joined(separator: "\n") + "\n").utf8)
        bytes += c.badLine + [10]
        bytes += Array((good[15...].joined(separator: "\n") + "\n").utf8)
        let path = try write("events.csv", bytes)
        let r = try ingest(["events": path])
        #expect(r.rejects.count == 1, "\(r.rejects)")
        let reject = try #require(r.rejects.first)
        #expect(reject.reason == c.reason)
        #expect(reject.field == c.field)
        #expect(reject.file == path)
        #expect(reject.row == 17, "header is line 1, 15 good rows, then the bad one")
        let kept = r.tables["events"]!
        #expect(Set(kept.i64("event_id")) == Set(0..<30))
        #expect(r.summary.dataRows == 31 && r.summary.accepted == 30)
        #expect(r.summary.duplicates == (c.reason == .duplicateID ? 1 : 0))
    }

    @Test("a duplicate keeps the earliest row in the file and drops the later one")
    func duplicateKeepsFirst() throws {
        let path = try write(
            "dup.csv",
            lines: [eventsHeader, "5,1,2,save,1700000000000,0,home,4", "5,3,9,click,1700000000005,1,search,8"])
        let r = try ingest(["events": path])
        #expect(r.tables["events"]!.i64("user_id") == [1])
        #expect(r.rejects.map(\.row) == [3])
    }

    @Test("a NaN or short embedding is rejected with non_finite / wrong_dimension")
    func badEmbedding() throws {
        let path = try write(
            "pins.tsv",
            lines: [
                "pin_id\tcategory\tcreated_at_ms\tcreator_id\tembedding",
                "1\t3\t1600000000000\t7\t0.5 1.5 -2",
                "2\t3\t1600000000000\t7\t0.5 nan -2",
                "3\t3\t1600000000000\t7\t0.5 1e-3",
                "4\t3\t1600000000000\t7\t1 2 inf",
                "5\t3\t1600000000000\t7\t1 2 x",
            ])
        let r = try ingest(["pins": path])
        #expect(r.rejects.map(\.reason) == [.nonFinite, .wrongDimension, .nonFinite, .notANumber])
        #expect(r.rejects.map(\.field) == Array(repeating: "embedding", count: 4))
        #expect(r.tables["pins"]!.i64("pin_id") == [1])
        #expect(r.tables["pins"]!.float32["embedding"]! == [0.5, 1.5, -2])
    }

    @Test("empty file and missing header stop the import with a named reason")
    func fatalFiles() throws {
        let empty = try write("empty.csv", [])
        let e1 = #expect(throws: IngestError.self) { _ = try ingest(["events": empty]) }
        #expect(e1?.reason == "empty_file")
        let headerless = try write("noheader.csv", lines: goodEvents(0..<3))
        let e2 = #expect(throws: IngestError.self) { _ = try ingest(["events": headerless]) }
        #expect(e2?.reason == "missing_header")
        #expect(e2?.description.contains("noheader.csv:1") == true)
        let missingColumn = try write(
            "nosurface.csv", lines: ["event_id,user_id,pin_id,event_type,timestamp_ms,position,session_id"])
        let e3 = #expect(throws: IngestError.self) { _ = try ingest(["events": missingColumn]) }
        #expect(e3?.reason == "missing_column")
        // A header alone is a valid empty import.
        let headerOnly = try write("header.csv", lines: [eventsHeader])
        #expect(try ingest(["events": headerOnly]).summary.dataRows == 0)
    }

    @Test("foreign keys: events naming unknown users or pins are rejected when those are imported")
    func foreignKeys() throws {
        let users = try write(
            "users.csv",
            lines: [
                "user_id,country,device,signup_at_ms", "1,US,ios,1600000000000", "2,FR,web,1600000000000", "3,de,web,1",
            ])
        let pins = try write(
            "pins.csv",
            lines: [
                "pin_id,category,created_at_ms,creator_id,embedding", "10,0,1600000000000,1,1 2",
                "11,0,1600000000000,9,1 2",
            ])
        let events = try write(
            "ev.csv",
            lines: [
                eventsHeader, "1,1,10,save,1700000000000,0,home,1", "2,2,11,save,1700000000000,0,home,1",
                "3,1,12,save,1700000000000,0,home,1", "4,5,10,save,1700000000000,0,home,1",
            ])
        let r = try ingest(["users": users, "pins": pins, "events": events])
        #expect(
            r.rejects.map { "\($0.row):\($0.field):\($0.reason.rawValue)" } == [
                "4:country:unknown_value", "3:creator_id:unknown_reference",
                "3:pin_id:unknown_reference", "4:pin_id:unknown_reference", "5:user_id:unknown_reference",
            ])
        #expect(r.rejects[1].file == pins)
        // Pin 11 was rejected (unknown creator), so event 2 (pin 11) is rejected as well.
        #expect(r.tables["events"]!.i64("event_id") == [1])
    }

    @Test("CRLF line endings, blank lines and a last line without newline are read")
    func lineEndings() throws {
        let text =
            eventsHeader + "\r\n" + goodEvents(0..<3).joined(separator: "\r\n") + "\r\n\r\n" + goodEvents(3..<4)[0]
        let path = try write("crlf.csv", Array(text.utf8))
        let r = try ingest(["events": path])
        #expect(r.rejects.isEmpty)
        #expect(Set(r.tables["events"]!.i64("event_id")) == [0, 1, 2, 3])
        // Events come out in time order within a user.
        let t = r.tables["events"]!
        let u = t.i64("user_id"), ts = t.i64("timestamp_ms")
        for i in 1..<t.count where u[i] == u[i - 1] { #expect(ts[i] >= ts[i - 1]) }
    }

    @Test("probabilities: empty means not recorded (NaN); outside [0, 1] is rejected")
    func probabilities() throws {
        let path = try write(
            "p.csv",
            lines: [
                eventsHeader + ",p_closeup", "1,1,1,impression,1700000000000,0,home,1,0.25",
                "2,1,1,closeup,1700000000001,0,home,1,", "3,1,1,impression,1700000000002,0,home,1,1.5",
            ])
        let r = try ingest(["events": path])
        #expect(r.rejects.map(\.reason) == [.outOfRange])
        let p = r.tables["events"]!.float32["p_closeup"]!
        #expect(p[0] == 0.25 && p[1].isNaN)
    }
}

@Suite("Ingest under mpirun", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct MultiRankIngestTests {
    @Test(
        "a file with every kind of bad row gives the same rejects and data on 1, 2 and 4 ranks; the threshold sets the exit status"
    )
    func badInputAcrossRanks() throws {
        let dir = try MPIRun.temporaryDirectory("ingest-mr")
        var lines = [eventsHeader]
        var good = goodEvents(0..<400)
        // Interleave bad rows (and duplicates of earlier ids) through the file, so every rank's
        // byte range holds some.
        for (k, bad) in IngestTests.rowCases.enumerated() {
            for j in 0..<3 {
                good.insert(
                    String(decoding: bad.badLine, as: UTF8.self).replacingOccurrences(
                        of: "900,", with: "\(900 + 10 * k + j),"), at: 50 * k + 20 * j + 5)
            }
        }
        lines += good
        let path = dir.appendingPathComponent("events.csv")
        var bytes = Array((lines.joined(separator: "\n") + "\n").utf8)
        // Put real non-UTF-8 bytes back (the String round trip replaced them).
        let marker = Array("\u{FFFD}(".utf8)
        var i = 0
        while i + marker.count <= bytes.count {
            if Array(bytes[i..<i + marker.count]) == marker {
                bytes.replaceSubrange(i..<i + marker.count, with: [0xC3, 0x28])
            }
            i += 1
        }
        try Data(bytes).write(to: path)
        var rejects: [String]? = nil, digests: [String]? = nil
        for ranks in [1, 2, 4] {
            let out = dir.appendingPathComponent("out\(ranks)")
            let rejectsPath = dir.appendingPathComponent("rejects\(ranks).tsv").path
            let stdout = try runMosaic(
                ranks,
                [
                    "ingest", "--events", path.path, "--out", out.path, "--run-id", "x", "--rejects", rejectsPath,
                    "--max-reject-rate", "0.1",
                ])
            #expect(stdout.contains("rows=421 accepted=400 rejected=18 duplicates=3"), "\(stdout)")
            let text = try String(contentsOfFile: rejectsPath, encoding: .utf8)
            let rows = text.split(separator: "\n").dropFirst().map {
                $0.split(separator: "\t", omittingEmptySubsequences: false).dropFirst().prefix(3).joined(separator: " ")
            }
            #expect(rows.count == 21)
            for c in IngestTests.rowCases {
                #expect(rows.filter { $0.hasSuffix(c.reason.rawValue) }.count >= 3, "\(c.name)")
            }
            if let rejects { #expect(rows == rejects, "\(ranks) ranks") } else { rejects = rows }
            let d = try digestLines(out)
            if let digests { #expect(d == digests) } else { digests = d }
        }
        // 18 of 421 rows rejected is above a 1% threshold: non-zero exit, named reason, nothing published.
        let strict = dir.appendingPathComponent("strict")
        let r = try MPIRun.mosaic(
            ranks: 2,
            ["ingest", "--events", path.path, "--out", strict.path, "--run-id", "x", "--max-reject-rate", "0.01"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("reject_rate_exceeded"), "\(r.output)")
        #expect(!FileManager.default.fileExists(atPath: strict.appendingPathComponent("current").path))
        // More ranks than lines: ranks with an empty byte range take part and contribute nothing.
        let tiny = dir.appendingPathComponent("tiny.csv")
        try Data((eventsHeader + "\n" + goodEvents(0..<1)[0] + "\n").utf8).write(to: tiny)
        for ranks in [1, 4] {
            let stdout = try runMosaic(
                ranks,
                [
                    "ingest", "--events", tiny.path, "--out", dir.appendingPathComponent("tiny\(ranks)").path,
                    "--run-id", "t",
                ])
            #expect(stdout.contains("rows=1 accepted=1 rejected=0"), "\(stdout)")
        }
        // An empty file is a named error too.
        let empty = dir.appendingPathComponent("empty.csv")
        try Data().write(to: empty)
        let r2 = try MPIRun.mosaic(ranks: 2, ["ingest", "--events", empty.path, "--out", strict.path, "--run-id", "y"])
        #expect(r2.status != 0 && r2.stderr.contains("empty_file"), "\(r2.output)")
    }
}

@Suite("CSV export ↔ import round trip")
struct CSVRoundTripTests {
    @Test("edge-case floats, lists and enums survive CSVWriter → CSVParser bit for bit")
    func edgeValues() throws {
        var pins = Table(schema: .pins(dimension: 4), including: ["tags"])
        pins.int64["pin_id"] = [0, 9_223_372_036_854_775_807]
        pins.int32["category"] = [0, Int32.max]
        pins.int64["created_at_ms"] = [0, 4_102_444_800_000]
        pins.int64["creator_id"] = [5, 6]
        pins.float32["embedding"] = [
            -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1e-38, 0.1, -3.4028235e38, 1.0000001, 123456.79,
        ]
        pins.int32["tags"] = [1, 2, 3, 4, 5, 6, 7, 8] + [Int32](repeating: -1, count: 8)
        pins.setCount(2)
        for delimiter: UInt8 in [44, 9] {
            var bytes = CSVWriter.header(pins, delimiter: delimiter)
            CSVWriter.append(pins, rows: 0..<2, delimiter: delimiter, to: &bytes)
            let dir = try MPIRun.temporaryDirectory("csv-rt")
            let path = dir.appendingPathComponent(delimiter == 9 ? "pins.tsv" : "pins.csv").path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let r = try Ingestor(files: ["pins": path]).run(comm: try Communicator.world())
            #expect(r.rejects.isEmpty, "\(r.rejects)")
            let back = r.tables["pins"]!
            #expect(back.float32["embedding"]!.map(\.bitPattern) == pins.float32["embedding"]!.map(\.bitPattern))
            #expect(back.digest() == pins.digest())
        }
    }
}

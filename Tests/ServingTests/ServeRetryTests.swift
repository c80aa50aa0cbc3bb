import Foundation
import Serving
import Testing
import _TestSupport

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite(
    "mosaic-serve: retried events and the next night's ingest", .serialized,
    .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct ServeRetryTests {
    /// The rotated events (event ids) of the log in `wal`.
    static func rotatedIDs(_ wal: URL) throws -> [Int64] {
        let rotated = wal.appendingPathComponent("rotated")
        var ids: [Int64] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: rotated.path).sorted()
        where name.hasSuffix(".csv") {
            let lines = try String(contentsOf: rotated.appendingPathComponent(name), encoding: .utf8)
                .split(separator: "\n")
            ids += lines.dropFirst().compactMap { Int64($0.split(separator: ",")[0]) }
        }
        return ids
    }

    @Test(
        "a retried POST /v1/events (client ids) appends nothing, before and after kill -9; the next night ingests the rotated files once"
    )
    func retriesAndIngest() async throws {
        let f = try ServeFixture.shared.get()
        let wal = try MPIRun.temporaryDirectory("serve-retry-wal")
        let args = ["--feeds", f.feeds.path, "--world", f.world.path, "--wal-dir", wal.path]
        let server = try await ServeProcess(args)
        // 30 events over users 0…5 with client ids, and 2 without.
        let keyed = (0..<30).map { i in
            #"{"user":\#(i % 6),"pin":\#(2000 + i),"type":"\#(["save", "closeup", "hide"][i % 3])","id":"c-\#(i)"}"#
        }
        let batch = #"{"events":[\#(keyed.joined(separator: ","))]}"#
        let decoder = JSONDecoder()
        let (s1, d1) = try await server.post("/v1/events", batch)
        #expect(s1 == 200, "\(String(decoding: d1, as: UTF8.self))")
        let first = try decoder.decode(FeedService.EventsAnswer.self, from: d1)
        #expect(first.accepted == 30 && first.duplicates == nil)
        // The retry (say its answer was lost): 2xx, nothing appended.
        let (s2, d2) = try await server.post("/v1/events", batch)
        #expect(s2 == 200)
        let retry = try decoder.decode(FeedService.EventsAnswer.self, from: d2)
        #expect(retry.accepted == 0 && retry.duplicates == 30 && retry.first_seq == nil)
        // A batch repeating one id within itself, and events without ids (never de-duplicated).
        let mixed =
            #"{"events":[{"user":0,"pin":3000,"type":"save","id":"m"},{"user":0,"pin":3000,"type":"save","id":"m"},"#
            + #"{"user":1,"pin":3001,"type":"click"},{"user":1,"pin":3001,"type":"click"}]}"#
        let (s3, d3) = try await server.post("/v1/events", mixed)
        #expect(s3 == 200)
        let m = try decoder.decode(FeedService.EventsAnswer.self, from: d3)
        #expect(m.accepted == 3 && m.duplicates == 1)
        // The same id for another user is another event.
        let (s4, d4) = try await server.post(
            "/v1/events", #"{"events":[{"user":2,"pin":3002,"type":"save","id":"m"}]}"#)
        #expect(s4 == 200)
        #expect(try decoder.decode(FeedService.EventsAnswer.self, from: d4).accepted == 1)
        // A bad id is refused with its field named.
        let long = String(repeating: "x", count: 65)
        let (s5, d5) = try await server.post(
            "/v1/events", #"{"events":[{"user":2,"pin":1,"type":"save","id":"\#(long)"}]}"#)
        #expect(s5 == 400 && String(decoding: d5, as: UTF8.self).contains("events[0].id"))
        let (s6, _) = try await server.post("/v1/events", #"{"events":[{"user":2,"pin":1,"type":"save","id":7}]}"#)
        #expect(s6 == 400)
        server.kill9()

        let restarted = try await ServeProcess(args)
        // The retry after the restart: still nothing appended.
        let (s7, d7) = try await restarted.post("/v1/events", batch)
        #expect(s7 == 200)
        let late = try decoder.decode(FeedService.EventsAnswer.self, from: d7)
        #expect(late.accepted == 0 && late.duplicates == 30)
        var pins: [Int64] = []
        for user in 0..<6 {
            let (_, data) = try await restarted.request("/v1/session/\(user)")
            pins += try decoder.decode(FeedService.SessionAnswer.self, from: data).events.map(\.pin)
        }
        let expected = (0..<30).map { Int64(2000 + $0) } + [3000, 3001, 3001, 3002]
        #expect(pins.sorted() == expected.sorted(), "each event once in the sessions")
        restarted.stop()
        let ids = try Self.rotatedIDs(wal)
        #expect(ids.count == 34 && Set(ids).count == 34, "each event once in the rotated log")

        // The next night: `mosaic ingest --serving-events <wal>/rotated` reads them, then moves
        // them to <wal>/ingested; the night after finds nothing new.
        let out = try MPIRun.temporaryDirectory("serve-retry-ingest")
        let rotated = wal.appendingPathComponent("rotated").path
        let night1 = try MPIRun.mosaic(
            ranks: 2, ["ingest", "--serving-events", rotated, "--out", out.path, "--run-id", "night-1"])
        #expect(night1.status == 0, "\(night1.output)")
        #expect(night1.output.contains("accepted=34 "), "\(night1.output)")
        #expect(try Self.rotatedIDs(wal).isEmpty)
        let moved = try FileManager.default.contentsOfDirectory(atPath: wal.appendingPathComponent("ingested").path)
        #expect(moved.contains { $0.hasSuffix(".csv") } && moved.contains { $0.hasSuffix(".keys") })
        let night2 = try MPIRun.mosaic(
            ranks: 2, ["ingest", "--serving-events", rotated, "--out", out.path, "--run-id", "night-2"])
        #expect(night2.status == 0, "\(night2.output)")
        #expect(night2.output.contains("nothing new to ingest"), "\(night2.output)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("runs/night-2").path))

        // A restart after the night numbers new events after the ingested ones.
        let third = try await ServeProcess(args)
        defer { third.stop() }
        let (s8, d8) = try await third.post("/v1/events", #"{"events":[{"user":3,"pin":9,"type":"save"}]}"#)
        #expect(s8 == 200)
        let next = try decoder.decode(FeedService.EventsAnswer.self, from: d8)
        #expect(next.first_seq == 35)
    }
}

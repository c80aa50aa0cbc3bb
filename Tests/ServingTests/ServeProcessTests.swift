import Foundation
import Serving
import Synchronization
import Testing
import _TestSupport

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite("mosaic-serve as a process", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct ServeProcessTests {
    func fixture() throws -> ServeFixture { try ServeFixture.shared.get() }

    @Test(
        "`mosaic-serve` on loopback answers every user's feed, plain and re-ranked, as the library's FeedService does")
    func sameFeedsAsTheLibrary() async throws {
        let f = try fixture()
        let service = FeedService(store: try FeedStore.load(feeds: f.feeds, world: f.world))
        let server = try await ServeProcess(["--feeds", f.feeds.path, "--world", f.world.path])
        defer { server.stop() }
        let decoder = JSONDecoder()
        let session = #"{"events":[{"pin":1,"type":"save"},{"pin":2,"type":"hide"}]}"#
        let events = try decoder.decode(FeedService.SessionBody.self, from: Data(session.utf8)).events
        for user in service.store.feeds.keys.sorted() {
            let (status, data) = try await server.request("/v1/feed/\(user)?k=8")
            #expect(status == 200)
            let served = try decoder.decode(FeedService.FeedAnswer.self, from: data)
            #expect(served.pins == Array(service.store.feeds[user]!.prefix(8)), "user \(user): the published feed")
            #expect(served.run == service.store.runID)
            let (postStatus, postData) = try await server.post("/v1/feed/\(user)?k=8", session)
            #expect(postStatus == 200)
            let reranked = try decoder.decode(FeedService.FeedAnswer.self, from: postData)
            #expect(
                reranked.pins == (try service.answer(user: "\(user)", k: "8", session: events)).pins, "user \(user)")
        }
    }

    @Test("kill -9 right after N acknowledged events, restart: all N in the sessions and the rotated log, once")
    func killNineAndRestart() async throws {
        let f = try fixture()
        let wal = try MPIRun.temporaryDirectory("serve-wal")
        let args = ["--feeds", f.feeds.path, "--world", f.world.path, "--wal-dir", wal.path]
        let server = try await ServeProcess(args)
        // 24 concurrent requests of 10 events each, over users 0…11 and pins 1000 + i.
        let seqs = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for r in 0..<24 {
                group.addTask {
                    let events = (0..<10).map { j in
                        #"{"user":\#(r % 12),"pin":\#(1000 + r * 10 + j),"type":"\#(["save", "closeup", "hide"][j % 3])"}"#
                    }
                    let (status, data) = try await server.post(
                        "/v1/events", #"{"events":[\#(events.joined(separator: ","))]}"#)
                    #expect(status == 200, "\(String(decoding: data, as: UTF8.self))")
                    let a = try JSONDecoder().decode(FeedService.EventsAnswer.self, from: data)
                    return Array(a.first_seq!...a.last_seq!)
                }
            }
            var all: [UInt64] = []
            for try await part in group { all += part }
            return all
        }
        server.kill9()
        #expect(seqs.count == 240 && Set(seqs).count == 240)
        let restarted = try await ServeProcess(args)
        defer { restarted.stop() }
        var inSessions: [UInt64] = []
        for user in 0..<12 {
            let (_, data) = try await restarted.request("/v1/session/\(user)")
            let s = try JSONDecoder().decode(FeedService.SessionAnswer.self, from: data)
            inSessions += s.events.map(\.seq)
            #expect(s.events.allSatisfy { $0.pin >= 1000 && ($0.pin - 1000) / 10 % 12 == Int64(user) })
        }
        #expect(inSessions.sorted() == seqs.sorted(), "every acknowledged event is in its session once")
        let rotated = wal.appendingPathComponent("rotated")
        var ids: [Int64] = []
        var text = LoggedEvent.csvHeader + "\n"
        for name in try FileManager.default.contentsOfDirectory(atPath: rotated.path).sorted() {
            let lines = try String(contentsOf: rotated.appendingPathComponent(name), encoding: .utf8)
                .split(separator: "\n")
            #expect(lines.first.map(String.init) == LoggedEvent.csvHeader, "\(name)")
            ids += lines.dropFirst().compactMap { Int64($0.split(separator: ",")[0]) }
            text += lines.dropFirst().joined(separator: "\n") + "\n"
        }
        #expect(ids.count == 240 && Set(ids).count == 240, "each event once in the rotated log")
        #expect(Set(ids.map { UInt64($0) & 0xFF_FFFF_FFFF }) == Set(seqs))
        // The next night ingests them.
        let csv = wal.appendingPathComponent("all-events.csv")
        try text.write(to: csv, atomically: true, encoding: .utf8)
        let out = try MPIRun.temporaryDirectory("serve-ingest")
        let ingest = try MPIRun.mosaicSingleton(["ingest", "--events", csv.path, "--out", out.path])
        #expect(ingest.status == 0, "\(ingest.output)")
    }

    @Test("a new run swaps in under concurrent requests with zero errors; a truncated run is refused")
    func reloadUnderLoad() async throws {
        let f = try fixture()
        let token = try MPIRun.temporaryDirectory("serve-token").appendingPathComponent("token")
        try "t0ken\n".write(to: token, atomically: true, encoding: .utf8)
        let server = try await ServeProcess([
            "--feeds", f.feeds.path, "--world", f.world.path, "--admin-token-file", token.path, "--watch-interval",
            "0.2",
        ])
        defer { server.stop() }
        let before = try await server.health()
        #expect(before.version == 1)
        let stop = Flag()
        // Four clients asking for feeds until the end of the test.
        let load = (0..<4).map { c in
            Task { () -> (ok: Int, bad: [String]) in
                var ok = 0, bad: [String] = []
                var i = c
                while !stop.isSet && i < 40_000 {
                    i += 4
                    do {
                        let (status, data) = try await server.request("/v1/feed/\(i % 60)?k=5")
                        if status == 200 {
                            ok += 1
                        } else {
                            bad.append("\(status) \(String(decoding: data, as: UTF8.self))")
                        }
                    } catch { bad.append("\(error)") }
                }
                return (ok, bad)
            }
        }
        // Publish a new run into the same root: the watcher sees `current` move.
        let pre = try MPIRun.mosaic(
            ranks: 2,
            ["feed", "precompute", "--world", f.world.path, "--out", f.feeds.path, "--k", "6", "--run-id", "feeds-v2"])
        #expect(pre.status == 0, "\(pre.output)")
        var after = before
        for _ in 0..<300 where after.version == 1 {
            try await Task.sleep(nanoseconds: 100_000_000)
            after = try await server.health()
        }
        #expect(after.version == 2 && after.run == "feeds-v2")
        // A half-written copy of the run: a file cut short, pointed at by `current`.
        let runs = f.feeds.appendingPathComponent("runs")
        let bad = runs.appendingPathComponent("feeds-v3-truncated")
        try FileManager.default.copyItem(at: runs.appendingPathComponent("feeds-v2"), to: bad)
        let part = try #require(
            try FileManager.default.contentsOfDirectory(atPath: bad.appendingPathComponent("feeds").path).first)
        let handle = try FileHandle(forWritingTo: bad.appendingPathComponent("feeds").appendingPathComponent(part))
        try handle.truncate(atOffset: 100)
        try handle.close()
        let link = f.feeds.appendingPathComponent("current"), tmp = f.feeds.appendingPathComponent(".current-tmp")
        try FileManager.default.createSymbolicLink(atPath: tmp.path, withDestinationPath: "runs/feeds-v3-truncated")
        #expect(rename(tmp.path, link.path) == 0)
        let (status, data) = try await server.request(
            "/admin/reload", method: "POST", headers: ["Authorization": "Bearer t0ken"])
        #expect(status == 422 && String(decoding: data, as: UTF8.self).contains("truncated"))
        let (_, metrics) = try await server.request("/metrics")
        let text = String(decoding: metrics, as: UTF8.self)
        #expect(
            text.contains("mosaic_reload_failures_total 1") || text.contains("mosaic_reload_failures_total 2"),
            "\(text)")
        #expect(text.contains("mosaic_run_version 2") && text.contains(#"mosaic_run_info{run="feeds-v2"} 1"#))
        _ = stop.setOnce()
        var ok = 0, errors: [String] = []
        for t in load {
            let r = await t.value
            ok += r.ok
            errors += r.bad
        }
        #expect(errors.isEmpty, "\(errors.prefix(3))")
        #expect(ok >= 4, "every client was answered")
        let now = try await server.health()
        #expect(now.version == 2 && now.run == "feeds-v2", "the refused run did not replace the served one")
        // Put the good run back for the other tests.
        try FileManager.default.createSymbolicLink(atPath: tmp.path, withDestinationPath: "runs/feeds-v2")
        #expect(rename(tmp.path, link.path) == 0)
    }
}

extension ServeProcessTests {
    @Test("saves posted over HTTP pull their topic up in the next feed; hides push theirs down")
    func sessionTopics() async throws {
        let f = try fixture()
        let store = try FeedStore.load(feeds: f.feeds, world: f.world)
        let server = try await ServeProcess([
            "--feeds", f.feeds.path, "--world", f.world.path, "--wal-dir", try MPIRun.temporaryDirectory("topics").path,
        ])
        defer { server.stop() }
        let users = store.feeds.keys.sorted().filter { store.feeds[$0]!.count >= 6 }.prefix(30)
        try #require(users.count >= 10)
        var (savedBefore, savedAfter, hiddenBefore, hiddenAfter) = (0, 0, 0, 0)
        for (n, user) in users.enumerated() {
            // Half the users save a pin of a topic (category) missing from the top 3 of their
            // stored feed; the others hide their first pin. Each topic is then counted in the top 3
            // of the stored order (without the pin) and of the served feed.
            let feed = store.feeds[user]!
            let top = Set(feed.prefix(3).compactMap { store.categories[$0] })
            let pin = n % 2 == 0 ? feed.last { !top.contains(store.categories[$0] ?? -1) } : feed[0]
            guard let pin else { continue }
            let topic = store.categories[pin]
            let type = n % 2 == 0 ? "save" : "hide"
            let (status, _) = try await server.post(
                "/v1/events", #"{"events":[{"user":\#(user),"pin":\#(pin),"type":"\#(type)"}]}"#)
            #expect(status == 200)
            let (_, data) = try await server.request("/v1/feed/\(user)?k=3")
            let served = try JSONDecoder().decode(FeedService.FeedAnswer.self, from: data).pins
            #expect(!served.contains(pin))
            let before = feed.filter { $0 != pin }.prefix(3).filter { store.categories[$0] == topic }.count
            let after = served.filter { store.categories[$0] == topic }.count
            if type == "save" {
                (savedBefore, savedAfter) = (savedBefore + before, savedAfter + after)
            } else {
                (hiddenBefore, hiddenAfter) = (hiddenBefore + before, hiddenAfter + after)
            }
        }
        #expect(savedAfter > savedBefore, "saved topic in the top 3: \(savedBefore) → \(savedAfter)")
        #expect(hiddenAfter < hiddenBefore, "hidden topic in the top 3: \(hiddenBefore) → \(hiddenAfter)")
    }
}

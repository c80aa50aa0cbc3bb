import EventData
import Foundation
import Hummingbird
import HummingbirdTesting
import Serving
import Testing
import _TestSupport

@Suite("Session state over HTTP")
struct SessionAPITests {
    let json: HTTPFields = [.contentType: "application/json"]

    func service(log: EventLog?, token: String? = nil) -> FeedService {
        FeedService(
            runs: RunHolder(store: smallStore()), rerank: SessionRerank(alpha: 1, beta: 1), log: log, adminToken: token)
    }

    func pins(_ r: TestResponse) throws -> FeedService.FeedAnswer {
        try JSONDecoder().decode(FeedService.FeedAnswer.self, from: Data(String(buffer: r.body).utf8))
    }

    @Test("posted events are durable, shown by /v1/session, and re-rank the next feed at once")
    func eventsRerank() async throws {
        let log = try EventLog(directory: try MPIRun.temporaryDirectory("serve-events"))
        defer { log.close() }
        let app = Application(router: service(log: log).router())
        try await app.test(.router) { client in
            let body =
                #"{"events":[{"user":4,"pin":5,"type":"save","ts":1700000000000},{"user":4,"pin":1,"type":"hide"}]}"#
            try await client.execute(uri: "/v1/events", method: .post, headers: json, body: ByteBuffer(string: body)) {
                r in
                #expect(
                    r.status == .ok && String(buffer: r.body).contains(#""accepted":2"#), "\(String(buffer: r.body))")
            }
            // Feed 1, 4, 2, 5, 3, 6 (x-pins 1–3, y-pins 4–6): the save of 5 pulls the y-pins up, the
            // hide of 1 pushes the x-pins down; 5 and 1 leave.
            try await client.execute(uri: "/v1/feed/4?k=10", method: .get) { r in
                let a = try pins(r); #expect(a.pins == [4, 6, 2, 3])
            }
            try await client.execute(uri: "/v1/session/4", method: .get) { r in
                let s = try JSONDecoder().decode(
                    FeedService.SessionAnswer.self, from: Data(String(buffer: r.body).utf8))
                #expect(
                    s.saved == [5] && s.hidden == [1] && s.events.map(\.seq) == [1, 2] && s.served == [4, 6, 2, 3])
                #expect(s.events[0].ts == 1_700_000_000_000 && s.events[1].ts > 1_700_000_000_000)
            }
        }
        #expect(log.syncCount >= 1)
    }

    @Test("served pins leave the next feed; a cursor pages through the same ranking; stale cursors are 410")
    func servedAndCursor() async throws {
        let app = Application(router: service(log: nil).router())
        try await app.test(.router) { client in
            var cursor = ""
            try await client.execute(uri: "/v1/feed/4?k=2", method: .get) { r in
                let a = try pins(r)
                #expect(a.pins == [1, 4] && a.cursor != nil)
                cursor = a.cursor ?? ""
            }
            try await client.execute(uri: "/v1/feed/4?k=3&cursor=\(cursor)", method: .get) { r in
                let a = try pins(r)
                #expect(a.pins == [2, 5, 3])
                cursor = a.cursor ?? ""
            }
            try await client.execute(uri: "/v1/feed/4?k=3&cursor=\(cursor)", method: .get) { r in
                let a = try pins(r)
                #expect(a.pins == [6] && a.cursor == nil, "the last page has no cursor")
            }
            // Everything served: the next feed starts over with a new ranking; the old cursor is stale.
            try await client.execute(uri: "/v1/feed/4?k=2", method: .get) { r in
                let a = try pins(r); #expect(a.pins == [1, 4])
            }
            try await client.execute(uri: "/v1/feed/4?k=2", method: .get) { r in
                let a = try pins(r); #expect(a.pins == [2, 5])
            }
            try await client.execute(uri: "/v1/feed/4?k=2&cursor=\(cursor)", method: .get) { r in
                #expect(r.status == .gone && String(buffer: r.body).contains("stale"))
            }
            try await client.execute(uri: "/v1/feed/4?cursor=x.y", method: .get) { r in
                #expect(r.status == .badRequest && String(buffer: r.body).contains("cursor"))
            }
        }
    }

    @Test("a session idle for longer than the TTL forgets its served pins; its saves still apply")
    func sessionTTL() throws {
        let s = FeedService(
            runs: RunHolder(store: smallStore()), rerank: SessionRerank(alpha: 1, beta: 1), sessionTTL: 60)
        s.sessions.apply([LoggedEvent(seq: 1, user: 4, pin: 2, type: .save, timestampMs: 0)])
        #expect(try s.feed(user: "4", k: "2", cursor: nil, now: 1_000).pins == [1, 3])
        #expect(try s.feed(user: "4", k: "2", cursor: nil, now: 1_059).pins == [4, 5])
        let stale = try s.feed(user: "4", k: "2", cursor: nil, now: 1_200)
        #expect(stale.pins == [1, 3], "a new visit: the served pins come back, the saved one does not")
        #expect(s.sessions.session(4)?.served == [1, 3])
    }

    @Test("without a log, events are refused (503) and the sessions are unchanged")
    func noLog() async throws {
        let s = service(log: nil)
        try await Application(router: s.router()).test(.router) { client in
            let body = #"{"events":[{"user":4,"pin":5,"type":"save"}]}"#
            try await client.execute(uri: "/v1/events", method: .post, headers: json, body: ByteBuffer(string: body)) {
                r in
                #expect(r.status == .serviceUnavailable && String(buffer: r.body).contains("--wal-dir"))
            }
        }
        #expect(s.sessions.session(4) == nil)
    }

    @Test("the admin API needs the bearer token: 401 without or with a wrong one, 403 when disabled")
    func adminToken() async throws {
        let app = Application(router: service(log: nil, token: "s3cret").router())
        try await app.test(.router) { client in
            for header in [nil, "Bearer nope", "s3cret"] {
                let h: HTTPFields = header.map { [.authorization: $0] } ?? [:]
                try await client.execute(uri: "/admin/reload", method: .post, headers: h) { r in
                    #expect(r.status == .unauthorized && String(buffer: r.body).contains("token"))
                }
            }
            try await client.execute(uri: "/admin/reload", method: .post, headers: [.authorization: "Bearer s3cret"]) {
                r in
                #expect(r.status == .unprocessableContent, "no loader: the reload is refused, with a reason")
            }
        }
        try await Application(router: service(log: nil).router()).test(.router) { client in
            try await client.execute(uri: "/admin/reload", method: .post, headers: [.authorization: "Bearer x"]) { r in
                #expect(r.status == .forbidden)
            }
        }
    }
}

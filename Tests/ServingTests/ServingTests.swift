import EventData
import Foundation
import Hummingbird
import ProcessKit
import HummingbirdTesting
import Serving
import Testing
import _TestSupport

/// A store of two users (ids 4 and 6 on shard 0 of 2) over pins 1…6 with 2-d embeddings:
/// pins 1–3 point along x, pins 4–6 along y.
func smallStore() -> FeedStore {
    let x: [Float] = [1, 0], y: [Float] = [0, 1]
    return FeedStore(
        feeds: [4: [1, 4, 2, 5, 3, 6], 6: [6, 5]],
        embeddings: [1: x, 2: x, 3: x, 4: y, 5: y, 6: y], categories: [:], d: 2, runID: "feeds-test",
        sourceRun: "world-test", shard: 0, shards: 2)
}

@Suite("Session re-rank")
struct SessionRerankTests {
    let store = smallStore()
    func rerank(_ session: [SessionEvent], k: Int = 6) -> [Int64] {
        SessionRerank(alpha: 1, beta: 1).rerank(feed: store.feeds[4]!, session: session, k: k) { store.embeddings[$0] }
    }

    @Test("no session events: the precomputed order")
    func unchanged() { #expect(rerank([]) == [1, 4, 2, 5, 3, 6]) }

    @Test("pins met in the session leave the feed; k cuts it")
    func metPinsLeave() {
        // Pin 2 (a closeup) pulls the other x-pins up: 1, 3, then the y-pins.
        #expect(
            rerank([SessionEvent(pin: 4, type: "impression"), SessionEvent(pin: 2, type: "closeup")], k: 3) == [
                1, 3, 5,
            ])
        #expect(rerank([], k: 2) == [1, 4])
    }

    @Test("a save pulls similar pins up; a hide pushes similar pins down")
    func sessionSignal() {
        let saved = rerank([SessionEvent(pin: 5, type: "save")])
        #expect(saved == [4, 6, 1, 2, 3])  // y-pins first, in their precomputed order
        let hidden = rerank([SessionEvent(pin: 1, type: "hide")])
        #expect(hidden == [4, 5, 6, 2, 3])  // x-pins last
    }
}

@Suite("Serving API")
struct ServingAPITests {
    let app = Application(router: FeedService(store: smallStore(), rerank: SessionRerank(alpha: 1, beta: 1)).router())

    func body(_ r: TestResponse) -> String { String(buffer: r.body) }
    let json: HTTPFields = [.contentType: "application/json"]

    @Test("GET a feed, POST a session, health and metrics")
    func answers() async throws {
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/feed/4?k=3", method: .get) { r in
                #expect(r.status == .ok)
                let a = try JSONDecoder().decode(FeedService.FeedAnswer.self, from: Data(body(r).utf8))
                #expect(a.pins == [1, 4, 2] && a.user == 4 && a.run == "feeds-test")
            }
            let session = #"{"events":[{"pin":5,"type":"save"}]}"#
            try await client.execute(
                uri: "/v1/feed/4?k=2", method: .post, headers: json, body: ByteBuffer(string: session)
            ) { r in
                #expect(r.status == .ok)
                let a = try JSONDecoder().decode(FeedService.FeedAnswer.self, from: Data(body(r).utf8))
                #expect(a.pins == [4, 6])
            }
            try await client.execute(uri: "/healthz", method: .get) { r in
                #expect(r.status == .ok && body(r).contains(#""users":2"#))
            }
            try await client.execute(uri: "/metrics", method: .get) { r in
                #expect(
                    body(r).contains(#"mosaic_responses_total{route="GET /v1/feed/{user}",code="200"} 1"#), "\(body(r))"
                )
                #expect(
                    body(r).contains(#"mosaic_responses_total{route="POST /v1/feed/{user}",code="200"} 1"#),
                    "\(body(r))")
                #expect(body(r).contains(#"mosaic_request_seconds_count{route="GET /v1/feed/{user}"} 1"#), "\(body(r))")
            }
        }
    }

    @Test("a ranked feed's items carry the score, the calibrated probabilities and the channels, after a session too")
    func rankedItems() async throws {
        var store = smallStore()
        store.items[6] = [
            FeedItem(pin: 6, score: 0.9, p_save: 0.2, p_closeup: 0.7, channels: ["two-tower"]),
            FeedItem(pin: 5, score: 0.5, p_save: 0.1, p_closeup: 0.4, channels: ["content", "trending"]),
        ]
        let expected = store.items[6]
        let app = Application(router: FeedService(store: store, rerank: SessionRerank(alpha: 1, beta: 1)).router())
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/feed/6?k=2", method: .get) { r in
                let a = try JSONDecoder().decode(FeedService.FeedAnswer.self, from: Data(body(r).utf8))
                #expect(a.pins == [6, 5] && a.items == expected, "\(body(r))")
            }
            let session = #"{"events":[{"pin":6,"type":"closeup"}]}"#
            try await client.execute(
                uri: "/v1/feed/6?k=2", method: .post, headers: json, body: ByteBuffer(string: session)
            ) { r in
                let a = try JSONDecoder().decode(FeedService.FeedAnswer.self, from: Data(body(r).utf8))
                #expect(a.pins == [5] && a.items?.map(\.pin) == [5] && a.items?[0].channels == ["content", "trending"])
            }
            try await client.execute(uri: "/v1/feed/4?k=1", method: .get) { r in
                #expect(!body(r).contains("items"), "a feed without ranking details has no items: \(body(r))")
            }
        }
    }

    @Test(
        "a user without a feed gets the cold-start lists by country and device, topped up from the country and everyone"
    )
    func coldStart() async throws {
        var store = smallStore()
        let fr = CountryCode.pack("FR")!
        store.coldStart = [
            -1: [3, 1, 2],
            FeedStore.coldStartSegment(country: fr): [5, 2],
            FeedStore.coldStartSegment(country: fr, device: Device.ios.rawValue): [6],
        ]
        let app = Application(router: FeedService(store: store, rerank: SessionRerank(alpha: 1, beta: 1)).router())
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/feed/8?k=4&country=FR&device=ios", method: .get) { r in
                let a = try JSONDecoder().decode(FeedService.FeedAnswer.self, from: Data(body(r).utf8))
                #expect(r.status == .ok && a.pins == [6, 5, 2, 3] && a.cold_start == true, "\(body(r))")
            }
            try await client.execute(uri: "/v1/feed/10?k=2", method: .get) { r in
                let a = try JSONDecoder().decode(FeedService.FeedAnswer.self, from: Data(body(r).utf8))
                #expect(a.pins == [3, 1], "no country: everyone's list")
            }
            try await client.execute(uri: "/v1/feed/8?device=fridge", method: .get) { r in
                #expect(r.status == .badRequest && body(r).contains("fridge"), "\(body(r))")
            }
            try await client.execute(uri: "/v1/feed/4?k=1&country=FR", method: .get) { r in
                let a = try JSONDecoder().decode(FeedService.FeedAnswer.self, from: Data(body(r).utf8))
                #expect(a.pins == [1] && a.cold_start == nil, "a user with a feed gets it")
            }
        }
    }

    @Test("bad input gets a 4xx JSON error naming what is wrong, and the server keeps answering")
    func badInput() async throws {
        try await app.test(.router) { client in
            let cases: [(String, HTTPRequest.Method, String?, HTTPResponse.Status, String)] = [
                ("/v1/feed/abc", .get, nil, .badRequest, "user id 'abc' is not a non-negative integer"),
                ("/v1/feed/4?k=0", .get, nil, .badRequest, "k '0' must be an integer in 1…500"),
                ("/v1/feed/4?k=x", .get, nil, .badRequest, "k 'x'"),
                ("/v1/feed/8", .get, nil, .notFound, "user 8 has no precomputed feed"),
                ("/v1/feed/5", .get, nil, .misdirectedRequest, "user 5 is served by shard 1 of 2"),
                ("/v1/feed/4", .post, "not json", .badRequest, "not valid"),
                ("/v1/feed/4", .post, #"{"events":[{"pin":1,"type":"like"}]}"#, .badRequest, "events[0].type 'like'"),
                ("/v1/feed/4", .post, #"{"events":[{"pin":"x","type":"save"}]}"#, .badRequest, "events[0].pin"),
                ("/v1/feed/4", .post, #"{"nothing":1}"#, .badRequest, "events"),
            ]
            for (uri, method, payload, status, message) in cases {
                try await client.execute(
                    uri: uri, method: method, headers: json, body: payload.map { ByteBuffer(string: $0) }
                ) { r in
                    #expect(r.status == status, "\(uri): \(r.status) \(body(r))")
                    #expect(body(r).contains(message), "\(uri): \(body(r))")
                }
            }
            let many =
                "{\"events\":[" + (0..<1001).map { _ in #"{"pin":1,"type":"impression"}"# }.joined(separator: ",")
                + "]}"
            try await client.execute(uri: "/v1/feed/4", method: .post, headers: json, body: ByteBuffer(string: many)) {
                r in
                #expect(r.status == .badRequest && body(r).contains("at most 1000"))
            }
            try await client.execute(uri: "/v1/feed/4?k=1", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/metrics", method: .get) { r in
                #expect(body(r).contains(#"route="GET /v1/feed/{user}",code="400"} 3"#), "\(body(r))")
            }
        }
    }
}

@Suite(
    "Serving shards over published feeds", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct FeedStoreTests {
    @Test("two shards load disjoint users that together cover every published feed, with their pins' embeddings")
    func shardsCoverFeeds() throws {
        let world = try MPIRun.temporaryDirectory("serve-world")
        let gen = try MPIRun.mosaic(
            ranks: 2,
            [
                "generate", "--users", "120", "--pins", "1500", "--fresh-pins-per-day", "50",
                "--days", "5", "--out", world.path,
            ])
        #expect(gen.status == 0, "\(gen.output)")
        let feeds = try MPIRun.temporaryDirectory("serve-feeds")
        let pre = try MPIRun.mosaic(
            ranks: 2, ["feed", "precompute", "--world", world.path, "--out", feeds.path, "--k", "8"])
        #expect(pre.status == 0, "\(pre.output)")
        let all = try FeedStore.load(feeds: feeds, world: world)
        let a = try FeedStore.load(feeds: feeds, world: world, shard: 0, shards: 2)
        let b = try FeedStore.load(feeds: feeds, world: world, shard: 1, shards: 2)
        #expect(all.feeds.count == 120)
        #expect(Set(a.feeds.keys).isDisjoint(with: b.feeds.keys) && a.feeds.count + b.feeds.count == 120)
        for (u, feed) in a.feeds {
            #expect(u % 2 == 0 && feed == all.feeds[u])
            #expect(feed.allSatisfy { a.embeddings[$0]?.count == a.d })
        }
        #expect(all.sourceRun.hasPrefix("world-") && a.d > 0)
        #expect(throws: (any Error).self) { try FeedStore.load(feeds: feeds, world: world, shard: 2, shards: 2) }
    }
}

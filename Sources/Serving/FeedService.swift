import EventData
import Foundation
import Hummingbird
import Synchronization

/// The serving shard's HTTP API (JSON):
///
/// | request | answer |
/// |---|---|
/// | `GET /healthz` | `{"status":"ok","run":…,"users":…,"shard":…,"shards":…}` |
/// | `GET /v1/feed/{user}?k=K` | `{"user":…,"run":…,"pins":[…]}`: the precomputed feed, first K (default 20, 1…500) |
/// | `POST /v1/feed/{user}?k=K` with `{"events":[{"pin":1,"type":"save"},…]}` | the feed re-ranked with the session's events (`SessionRerank`) |
/// | `GET /metrics` | Prometheus text: requests and errors by route, latency sum |
///
/// Errors are JSON `{"error":{"message":…}}` with a 4xx status and never stop the server: 400
/// for a bad user id, k, body, event type or more than 1,000 events; 404 for a user without a
/// feed; 421 (misdirected) for a user of another shard, naming the shard that owns it.
public struct FeedService: Sendable {
    public let store: FeedStore
    public let rerank: SessionRerank
    let metrics = Metrics()

    public init(store: FeedStore, rerank: SessionRerank = SessionRerank()) {
        self.store = store
        self.rerank = rerank
    }

    /// Request and error counts and latency, by route.
    final class Metrics: Sendable {
        struct Counts {
            var requests: [String: Int] = [:], errors: [String: Int] = [:], seconds: [String: Double] = [:]
        }
        let counts = Mutex(Counts())
        func record(_ route: String, seconds: Double, error: Bool) {
            counts.withLock {
                $0.requests[route, default: 0] += 1
                $0.seconds[route, default: 0] += seconds
                if error { $0.errors[route, default: 0] += 1 }
            }
        }
        func text() -> String {
            counts.withLock { c in
                var out = "# TYPE mosaic_requests_total counter\n"
                for (r, n) in c.requests.sorted(by: { $0.key < $1.key }) {
                    out += "mosaic_requests_total{route=\"\(r)\"} \(n)\n"
                }
                out += "# TYPE mosaic_request_errors_total counter\n"
                for (r, n) in c.errors.sorted(by: { $0.key < $1.key }) {
                    out += "mosaic_request_errors_total{route=\"\(r)\"} \(n)\n"
                }
                out += "# TYPE mosaic_request_seconds_sum counter\n"
                for (r, s) in c.seconds.sorted(by: { $0.key < $1.key }) {
                    out += "mosaic_request_seconds_sum{route=\"\(r)\"} \(String(format: "%.6f", s))\n"
                }
                return out
            }
        }
    }

    /// A feed answer.
    public struct FeedAnswer: ResponseEncodable, Decodable, Sendable {
        public var user: Int64
        public var run: String
        public var pins: [Int64]
        /// With a ranked feeds run: each pin's score, calibrated probabilities and channels.
        public var items: [FeedItem]? = nil
        /// True when the user had no feed and got the cold-start lists (trending by country and
        /// device).
        public var cold_start: Bool? = nil
    }

    /// A feed request's body.
    public struct SessionBody: Decodable, Sendable {
        public var events: [SessionEvent]
    }

    struct Health: ResponseEncodable {
        var status: String, run: String, source_run: String, users: Int, shard: Int, shards: Int
    }

    /// The feed of `user` (path text), first `k` (query text), re-ranked by `session` when given.
    /// Throws `HTTPError` (4xx) on bad input.
    public func answer(
        user text: String, k kText: Substring?, session: [SessionEvent]?, query: [String: Substring] = [:]
    ) throws -> FeedAnswer {
        guard let user = Int64(text) else {
            throw HTTPError(.badRequest, message: "user id '\(text)' is not an integer")
        }
        var k = 20
        if let kText {
            guard let v = Int(kText), (1...500).contains(v) else {
                throw HTTPError(.badRequest, message: "k '\(kText)' must be an integer in 1…500")
            }
            k = v
        }
        guard store.owns(user) else {
            let owner = Int(user.magnitude % UInt64(store.shards))
            throw HTTPError(
                .misdirectedRequest,
                message: "user \(user) is served by shard \(owner) of \(store.shards), not \(store.shard)")
        }
        guard let feed = store.feeds[user] else {
            // A user without a feed (new, or inactive at the night's run): the cold-start lists.
            guard !store.coldStart.isEmpty else {
                throw HTTPError(.notFound, message: "user \(user) has no precomputed feed in run \(store.runID)")
            }
            var country: Int32? = nil, device: UInt8? = nil
            if let c = query["country"] {
                guard let code = CountryCode.pack(String(c)) else {
                    throw HTTPError(.badRequest, message: "country '\(c)' is not a two-letter code")
                }
                country = code
            }
            if let d = query["device"] {
                guard let v = Device.allCases.first(where: { $0.name == String(d) }) else {
                    throw HTTPError(
                        .badRequest, message: "device '\(d)' is not one of \(Device.names.joined(separator: ", "))")
                }
                device = v.rawValue
            }
            var a = FeedAnswer(
                user: user, run: store.runID, pins: store.coldStartFeed(country: country, device: device, k: k))
            a.cold_start = true
            return a
        }
        func answer(_ pins: [Int64]) -> FeedAnswer {
            var a = FeedAnswer(user: user, run: store.runID, pins: pins)
            if let items = store.items[user] {
                let byPin = Dictionary(items.map { ($0.pin, $0) }, uniquingKeysWith: { a, _ in a })
                a.items = pins.compactMap { byPin[$0] }
            }
            return a
        }
        guard let session else { return answer(Array(feed.prefix(k))) }
        guard session.count <= 1_000 else {
            throw HTTPError(.badRequest, message: "\(session.count) session events; at most 1000 per request")
        }
        for (i, e) in session.enumerated() where !SessionRerank.types.contains(e.type) {
            throw HTTPError(
                .badRequest,
                message:
                    "events[\(i)].type '\(e.type)' is not one of \(SessionRerank.types.sorted().joined(separator: ", "))"
            )
        }
        return answer(rerank.rerank(feed: feed, session: session, k: k) { store.embeddings[$0] })
    }

    /// Runs `body`, recording the route's count, latency and whether it failed.
    func timed<T>(_ route: String, _ body: () async throws -> T) async throws -> T {
        let t0 = Date()
        do {
            let value = try await body()
            metrics.record(route, seconds: Date().timeIntervalSince(t0), error: false)
            return value
        } catch {
            metrics.record(route, seconds: Date().timeIntervalSince(t0), error: true)
            throw error
        }
    }

    /// The router of the API.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        let service = self
        router.get("healthz") { _, _ in
            Health(
                status: "ok", run: service.store.runID, source_run: service.store.sourceRun,
                users: service.store.feeds.count, shard: service.store.shard, shards: service.store.shards)
        }
        router.get("v1/feed/:user") { request, context in
            try await service.timed("get_feed") {
                try service.answer(
                    user: try context.parameters.require("user"), k: request.uri.queryParameters["k"], session: nil,
                    query: [
                        "country": request.uri.queryParameters["country"],
                        "device": request.uri.queryParameters["device"],
                    ].compactMapValues { $0 })
            }
        }
        router.post("v1/feed/:user") { request, context in
            try await service.timed("post_feed") {
                let body = try await request.decode(as: SessionBody.self, context: context)
                return try service.answer(
                    user: try context.parameters.require("user"), k: request.uri.queryParameters["k"],
                    session: body.events)
            }
        }
        router.get("metrics") { _, _ in service.metrics.text() }
        return router
    }

    /// Serves on `host:port` until the process is stopped.
    public func run(host: String, port: Int) async throws {
        let app = Application(router: router(), configuration: .init(address: .hostname(host, port: port)))
        try await app.runService()
    }
}

import EventData
import Foundation
import Hummingbird
import RankerInference

/// The serving shard: answers feed requests from the loaded run (`RunHolder`, swapped by
/// reloads) and the users' sessions (`SessionStore`, fed by `POST /v1/events` through the
/// write-ahead `EventLog`). The HTTP API is in `router()`; docs/serving.md lists it.
public struct FeedService: Sendable {
    /// Request limits: every one answers 4xx when passed.
    public struct Limits: Sendable {
        /// Largest request body in bytes (413 above; default 1 MiB).
        public var maxBodyBytes = 1 << 20
        /// Most events in one `POST /v1/events` or `POST /v1/feed` (400 above; default 1,000).
        public var maxEventsPerRequest = 1_000
        /// Largest `k` (pins per feed page; default 500).
        public var maxK = 500

        public init(maxBodyBytes: Int = 1 << 20, maxEventsPerRequest: Int = 1_000, maxK: Int = 500) {
            self.maxBodyBytes = maxBodyBytes
            self.maxEventsPerRequest = maxEventsPerRequest
            self.maxK = maxK
        }
    }

    /// The served run, swapped by reloads.
    public let runs: RunHolder
    /// The session re-rank's weights.
    public let rerank: SessionRerank
    /// The users' sessions (events, served pins, cursor rankings).
    public let sessions: SessionStore
    /// The write-ahead log; nil: `POST /v1/events` answers 503 (no durable log configured).
    public let log: EventLog?
    /// Request limits.
    public let limits: Limits
    /// The bearer token of `/admin/*`; nil: the admin API is disabled (403).
    public let adminToken: String?
    /// What `/metrics` reports.
    public let metrics: ServiceMetrics
    /// Seconds without a feed request after which a session's served pins are forgotten (a new
    /// visit may see them again; its saves and hides still apply); 0: never.
    public let sessionTTL: Double
    /// Reuse a session's last re-scoring while its engagements and the run are unchanged
    /// (default); false: every feed request of a session with engagements re-scores (benchmarks).
    public let cacheScores: Bool

    /// A service over `runs` with the given session store, event log, limits and admin token.
    public init(
        runs: RunHolder, rerank: SessionRerank = SessionRerank(), sessions: SessionStore = SessionStore(),
        log: EventLog? = nil, limits: Limits = Limits(), adminToken: String? = nil,
        metrics: ServiceMetrics = ServiceMetrics(), sessionTTL: Double = 1_800, cacheScores: Bool = true
    ) {
        self.sessionTTL = sessionTTL
        self.cacheScores = cacheScores
        self.runs = runs
        self.rerank = rerank
        self.sessions = sessions
        self.log = log
        self.limits = limits
        self.adminToken = adminToken
        self.metrics = metrics
    }

    /// A service over one fixed store (no reloads, no event log).
    public init(store: FeedStore, rerank: SessionRerank = SessionRerank()) {
        self.init(runs: RunHolder(store: store), rerank: rerank)
    }

    /// The run served now.
    public var store: FeedStore { runs.current.store }

    /// A feed answer.
    public struct FeedAnswer: ResponseEncodable, Decodable, Sendable {
        /// The user, the run served and the pins, best first.
        public var user: Int64
        public var run: String
        public var pins: [Int64]
        /// With a ranked feeds run: each pin's score, calibrated probabilities and channels.
        public var items: [FeedItem]? = nil
        /// True when the user had no feed and got the cold-start lists (trending by country and
        /// device).
        public var cold_start: Bool? = nil
        /// Pass as `?cursor=` for the next page of the same ranking; absent on the last page.
        public var cursor: String? = nil
    }

    /// A feed request's body (`POST /v1/feed/{user}`).
    public struct SessionBody: Decodable, Sendable {
        /// The session's events, sent with the request.
        public var events: [SessionEvent]
    }

    func parseUser(_ text: String, _ store: FeedStore) throws -> Int64 {
        guard let user = Int64(text), user >= 0 else {
            throw HTTPError(.badRequest, message: "user id '\(text.prefix(64))' is not a non-negative integer")
        }
        guard store.owns(user) else {
            let owner = Int(user.magnitude % UInt64(store.shards))
            throw HTTPError(
                .misdirectedRequest,
                message: "user \(user) is served by shard \(owner) of \(store.shards), not \(store.shard)")
        }
        return user
    }

    func parseK(_ text: Substring?) throws -> Int {
        guard let text else { return min(20, limits.maxK) }
        guard let v = Int(text), (1...limits.maxK).contains(v) else {
            throw HTTPError(.badRequest, message: "k '\(text.prefix(64))' must be an integer in 1…\(limits.maxK)")
        }
        return v
    }

    /// The user's stored ranking: the run's feed, or the cold-start lists (trending by country
    /// and device) for a user without one. Throws 404 when neither exists, 400 on a bad
    /// country or device.
    func baseFeed(_ user: Int64, _ store: FeedStore, query: [String: Substring]) throws -> (feed: [Int64], cold: Bool) {
        if let feed = store.feeds[user] { return (feed, false) }
        guard !store.coldStart.isEmpty else {
            throw HTTPError(.notFound, message: "user \(user) has no precomputed feed in run \(store.runID)")
        }
        var country: Int32? = nil, device: UInt8? = nil
        if let c = query["country"] {
            guard let code = CountryCode.pack(String(c)) else {
                throw HTTPError(.badRequest, message: "country '\(c.prefix(64))' is not a two-letter code")
            }
            country = code
        }
        if let d = query["device"] {
            guard let v = Device.allCases.first(where: { $0.name == String(d) }) else {
                throw HTTPError(
                    .badRequest,
                    message: "device '\(d.prefix(64))' is not one of \(Device.names.joined(separator: ", "))")
            }
            device = v.rawValue
        }
        return (store.coldStartFeed(country: country, device: device, k: limits.maxK), true)
    }

    func answer(_ user: Int64, _ store: FeedStore, _ pins: [Int64], cold: Bool, items: [FeedItem]? = nil)
        -> FeedAnswer
    {
        var a = FeedAnswer(user: user, run: store.runID, pins: pins)
        if let items = items ?? store.items[user] {
            let byPin = Dictionary(items.map { ($0.pin, $0) }, uniquingKeysWith: { a, _ in a })
            a.items = pins.compactMap { byPin[$0] }
        }
        if cold { a.cold_start = true }
        return a
    }

    /// `POST /v1/feed/{user}`: the feed of `user` (path text), first `k` (query text),
    /// re-ranked by the events of `session` sent with the request (the stored session is
    /// neither read nor changed). Throws `HTTPError` (4xx) on bad input.
    public func answer(
        user text: String, k kText: Substring?, session: [SessionEvent]?, query: [String: Substring] = [:]
    ) throws -> FeedAnswer {
        let store = runs.current.store
        let user = try parseUser(text, store)
        let k = try parseK(kText)
        let (feed, cold) = try baseFeed(user, store, query: query)
        if cold { return answer(user, store, Array(feed.prefix(k)), cold: true) }
        guard let session else { return answer(user, store, Array(feed.prefix(k)), cold: false) }
        guard session.count <= limits.maxEventsPerRequest else {
            throw HTTPError(
                .badRequest,
                message: "\(session.count) session events; at most \(limits.maxEventsPerRequest) per request")
        }
        for (i, e) in session.enumerated() where !SessionRerank.types.contains(e.type) {
            throw HTTPError(
                .badRequest,
                message:
                    "events[\(i)].type '\(e.type.prefix(64))' is not one of \(SessionRerank.types.sorted().joined(separator: ", "))"
            )
        }
        let engaged = session.filter { Self.engagedTypes.contains($0.type) }.map { ($0.pin, $0.type) }
        let items = try rescored(user, store, engaged: engaged)
        let base = items?.map(\.pin) ?? feed
        return answer(
            user, store, rerank.rerank(feed: base, session: session, k: k) { store.embeddings[$0] }, cold: false,
            items: items)
    }

    /// The event types whose pins enter the ranker's session features.
    static let engagedTypes: Set<String> = ["save", "closeup", "click"]

    /// `GET /v1/feed/{user}`: the next `k` pins of `user`'s feed with the stored session: pins
    /// saved, hidden or met in the session and pins already served leave it, the session's
    /// closeups, clicks, saves and hides re-rank the rest (`SessionRerank`). Without `cursor`
    /// the ranking is computed afresh and remembered; `cursor` (from the previous answer) pages
    /// through that remembered ranking. When every pin has been served, serving starts over; a
    /// session idle for `sessionTTL` seconds (by `now`, seconds of a monotonic clock) starts over too.
    public func feed(
        user text: String, k kText: Substring?, cursor: Substring?, query: [String: Substring] = [:],
        now: Double = Double(DispatchTime.now().uptimeNanoseconds) / 1e9
    ) throws -> FeedAnswer {
        let store = runs.current.store
        let user = try parseUser(text, store)
        let k = try parseK(kText)
        var page: (id: UInt64, offset: Int)? = nil
        if let cursor {
            let parts = cursor.split(separator: ".", omittingEmptySubsequences: false)
            guard cursor.count <= 40, parts.count == 2, let id = UInt64(parts[0]), let offset = Int(parts[1]),
                offset >= 0
            else { throw HTTPError(.badRequest, message: "cursor '\(cursor.prefix(64))' is not a cursor of this API") }
            page = (id, offset)
        }
        let (feed, cold) = try baseFeed(user, store, query: query)
        var session = sessions.session(user) ?? Session()
        let expired = sessionTTL > 0 && !session.served.isEmpty && now - session.lastServedAt > sessionTTL
        if expired { (session.served, session.ranking) = ([], []) }
        let removed = session.removed
        if let page {
            guard page.id == session.rankingID, page.offset <= session.ranking.count else {
                throw HTTPError(
                    .gone, message: "cursor '\(cursor ?? "")' is stale (the session has moved on); ask without a cursor"
                )
            }
            let rest = session.ranking[page.offset...]
            var pins: [Int64] = []
            var end = page.offset
            for pin in rest where pins.count < k {
                end += 1
                if !removed.contains(pin) { pins.append(pin) }
            }
            let id = sessions.update(user) { s in
                s.served += pins
                s.lastServedAt = now
                return s.rankingID
            }
            var a = answer(user, store, pins, cold: cold, items: session.rankingItems)
            if end < session.ranking.count { a.cursor = "\(id).\(end)" }
            return a
        }
        // With the night's ranker and engagements in the session, the feed's pins are re-scored
        // online first (`rescored`); without events the re-rank keeps the stored order: skip it.
        let engaged = session.events.filter { $0.type == .save || $0.type == .closeup || $0.type == .click }
        var rescoredItems: [FeedItem]? = nil, newKey: String? = nil
        if !cold, let last = engaged.last, store.ranker != nil {
            let key = "\(store.runID)\u{0}\(runs.current.version)\u{0}\(engaged.count)\u{0}\(last.seq)"
            if cacheScores, session.scoredKey == key, !session.scored.isEmpty {
                rescoredItems = session.scored
                metrics.rescore(cached: true)
            } else {
                rescoredItems = try rescored(user, store, engaged: engaged.map { ($0.pin, $0.type.name) })
                newKey = key
            }
        }
        let base = rescoredItems?.map(\.pin) ?? feed
        let ranked =
            session.events.isEmpty
            ? feed : rerank.rerank(feed: base, session: session.rerankEvents, k: base.count) { store.embeddings[$0] }
        let served = Set(session.served)
        var ranking = ranked.filter { !served.contains($0) }
        let startOver = ranking.isEmpty && !served.isEmpty
        if startOver { ranking = ranked }
        let pins = Array(ranking.prefix(k))
        let id = sessions.update(user) { s in
            if startOver || expired { s.served = [] }
            s.served += pins
            s.lastServedAt = now
            s.ranking = ranking
            s.rankingItems = rescoredItems
            if let newKey, let rescoredItems { (s.scoredKey, s.scored) = (newKey, rescoredItems) }
            s.rankingID += 1
            return s.rankingID
        }
        var a = answer(user, store, pins, cold: cold, items: rescoredItems)
        if pins.count < ranking.count { a.cursor = "\(id).\(pins.count)" }
        return a
    }

    /// The user's candidates (`FeedStore.candidates`: the run's top 500 ranked, or the feed)
    /// re-scored by the night's ranker with the session's engagements (`engaged`: pins and
    /// types of its saves, closeups, clicks) folded into the stored features
    /// (`FeedFeatures.applySession`), best first (ties keep the stored order); nil without a
    /// ranker, stored features or engagements. The session's pins read their content vectors
    /// from the user's stored rows and their categories from there or the shard's pins.
    func rescored(_ user: Int64, _ store: FeedStore, engaged: [(pin: Int64, type: String)]) throws -> [FeedItem]? {
        guard !engaged.isEmpty, let ranker = store.ranker, let stored = store.features[user],
            let items = store.candidates[user] ?? store.items[user], items.count == stored.count, !items.isEmpty
        else { return nil }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let f = FeedFeatures.fieldNames.count, d = stored.contentWidth
        var row: [Int64: Int] = [:]
        for (i, item) in items.enumerated() where row[item.pin] == nil { row[item.pin] = i }
        let session = engaged.map { e -> FeedFeatures.SessionEngagement in
            if let i = row[e.pin] {
                return .init(
                    category: Int32(truncatingIfNeeded: stored.ids[i * f]),
                    vector: Array(stored.content[i * d..<(i + 1) * d]))
            }
            return .init(category: store.categories[e.pin] ?? -1, vector: nil)
        }
        var data = stored.data()
        FeedFeatures.applySession(session, to: &data)
        let scores = try ranker.score(data)
        var out = items
        for i in out.indices {
            out[i].score = scores[i].score
            out[i].p_save = scores[i].pSave
            out[i].p_closeup = scores[i].pCloseup
        }
        let order = out.indices.sorted { (out[$0].score, -$0) > (out[$1].score, -$1) }
        metrics.rescore(seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        return order.map { out[$0] }
    }

    /// `GET /v1/session/{user}`'s answer.
    public struct SessionAnswer: ResponseEncodable, Decodable, Sendable {
        /// One stored event (`ts` in ms since the epoch).
        public struct Event: Codable, Sendable, Equatable {
            public var seq: UInt64, pin: Int64, type: String, ts: Int64
        }
        /// The user, the stored events (oldest first), the pins served in this session (in
        /// serving order) and the pins saved and hidden.
        public var user: Int64
        public var events: [Event]
        public var served: [Int64]
        public var saved: [Int64], hidden: [Int64]
    }

    /// The stored session of `user` (empty when it has none).
    public func session(user text: String) throws -> SessionAnswer {
        let user = try parseUser(text, runs.current.store)
        let s = sessions.session(user) ?? Session()
        return SessionAnswer(
            user: user,
            events: s.events.map { .init(seq: $0.seq, pin: $0.pin, type: $0.type.name, ts: $0.timestampMs) },
            served: s.served, saved: s.events.filter { $0.type == .save }.map(\.pin),
            hidden: s.events.filter { $0.type == .hide }.map(\.pin))
    }
}

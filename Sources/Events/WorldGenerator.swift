import EventData
import Foundation
import Linalg

/// Sizes and knobs of a synthetic world. Every random draw is keyed by (seed, stream, global
/// user or pin index), so the world is the same whatever the number of ranks producing it.
public struct WorldParameters: Sendable, Codable, Equatable {
    /// Base seed.
    public var seed: UInt64 = 42
    /// Number of users (ids 0 ..< users).
    public var users = 2_000
    /// Pins in the catalogue before day 0 (ids 0 ..< initialPins).
    public var initialPins = 20_000
    /// Fresh pins created on every simulated day (ids follow the initial catalogue in order).
    public var freshPinsPerDay = 1_000
    /// Simulated days of activity.
    public var days = 14
    /// Topics (the planted structure); each has `categoriesPerTopic` categories.
    public var topics = 24
    public var categoriesPerTopic = 4
    /// Pin content-embedding width d.
    public var dimension = 32
    /// Zipf exponent of pin popularity within a topic (and of topic popularity).
    public var zipfExponent = 1.05
    /// Scale of a user's session count: sessions = scale × Pareto(α = 1.5, x_m = 1), capped at 400;
    /// the mean is about 3 × scale sessions of 8–32 impressions.
    public var sessionScale = 2.0
    /// Every `powerUserEvery`-th user (ids 0, k, 2k, …) is a power user with 5,000+ events; 0 disables.
    public var powerUserEvery = 500
    /// Start of day 0 in ms since the epoch (2026-01-01 UTC).
    public var startMs: Int64 = 1_767_225_600_000

    public init() {}

    /// Total pins (initial catalogue plus every day's fresh pins).
    public var totalPins: Int { initialPins + freshPinsPerDay * days }
    /// Number of categories.
    public var categories: Int { topics * categoriesPerTopic }
    /// Milliseconds in a simulated day.
    public static let dayMs: Int64 = 86_400_000
}

/// The synthetic world: users with long-term topic interests and drifting session interests,
/// Zipf-popular pins arriving every day, feed impressions with a position bias, and closeups,
/// clicks, saves and hides drawn from true probabilities that are stored on every impression
/// (`p_closeup`, `p_click`, `p_save`, `p_hide`: marginal probabilities of each outcome).
///
/// Pins are a pure function of their index (topic = index mod topics; created on day
/// ⌊(index − initialPins) / freshPinsPerDay⌋), so a rank generating a user's feed needs no pin
/// table in memory.
public struct WorldGenerator: Sendable {
    public let parameters: WorldParameters

    public init(_ parameters: WorldParameters) { self.parameters = parameters }

    // Stream ids: which random stream a draw belongs to.
    enum Stream: UInt64 { case user = 1, pin = 2, pinQuality = 3, topic = 4, category = 5 }

    // MARK: Pins

    /// The topic of pin `i`.
    @inline(__always) public func topic(ofPin i: Int) -> Int { i % parameters.topics }

    /// Pins visible on day `d`: the initial catalogue plus the fresh pins of days before `d`.
    @inline(__always) func visiblePins(onDay d: Int) -> Int { parameters.initialPins + d * parameters.freshPinsPerDay }

    /// The latent quality of pin `i` (a standard normal, drawn from the pin's own stream).
    @inline(__always) func quality(ofPin i: Int) -> Double {
        var r = RandomStream(seed: parameters.seed, rank: Stream.pinQuality.rawValue, index: UInt64(i))
        return r.normal()
    }

    /// A unit-ish direction per topic / category (the planted geometry of content embeddings).
    func direction(_ stream: Stream, _ index: Int) -> [Float] {
        var r = RandomStream(seed: parameters.seed, rank: stream.rawValue, index: UInt64(index))
        let scale = 1 / Double(parameters.dimension).squareRoot()
        return (0..<parameters.dimension).map { _ in Float(r.normal() * scale) }
    }

    /// Pins `ids` (any subset of `0 ..< totalPins`), as a `pins` table: category within the
    /// pin's topic, creation time (before day 0 for the initial catalogue, during its day for fresh
    /// pins), creator, and an embedding = topic direction + 0.5 × category direction + noise.
    public func pins(_ ids: [Int]) -> Table {
        let p = parameters
        let topicDirs = (0..<p.topics).map { direction(.topic, $0) }
        let catDirs = (0..<p.categories).map { direction(.category, $0) }
        var t = Table(schema: .pins(dimension: p.dimension))
        var pinID = [Int64](), category = [Int32](), created = [Int64](), creator = [Int64](), emb = [Float]()
        pinID.reserveCapacity(ids.count); category.reserveCapacity(ids.count); created.reserveCapacity(ids.count)
        creator.reserveCapacity(ids.count); emb.reserveCapacity(ids.count * p.dimension)
        let noise = 0.3 / Double(p.dimension).squareRoot()
        for i in ids {
            var r = RandomStream(seed: p.seed, rank: Stream.pin.rawValue, index: UInt64(i))
            let topic = topic(ofPin: i)
            let cat = topic * p.categoriesPerTopic + r.int(below: p.categoriesPerTopic)
            let createdAt: Int64
            if i < p.initialPins {
                createdAt = p.startMs - 1 - Int64(r.uniform() * Double(365 * WorldParameters.dayMs))
            } else {
                let day = Int64((i - p.initialPins) / max(1, p.freshPinsPerDay))
                // Fresh pins of day d are created during day d − 1 and visible from day d.
                createdAt =
                    p.startMs + (day - 1) * WorldParameters.dayMs
                    + Int64(r.uniform() * Double(WorldParameters.dayMs - 1))
            }
            pinID.append(Int64(i))
            category.append(Int32(cat))
            created.append(createdAt)
            creator.append(Int64(r.int(below: p.users)))
            for j in 0..<p.dimension {
                emb.append(topicDirs[topic][j] + 0.5 * catDirs[cat][j] + Float(r.normal() * noise))
            }
        }
        t.int64["pin_id"] = pinID
        t.int32["category"] = category
        t.int64["created_at_ms"] = created
        t.int64["creator_id"] = creator
        t.float32["embedding"] = emb
        t.setCount(ids.count)
        return t
    }

    // MARK: Users

    /// Everything generated for a block of users.
    public struct UserBlock: Sendable {
        public var users: Table
        public var boards: Table
        public var saves: Table
        public var events: Table
    }

    /// Generates users `ids` with their boards, saves and time-ordered events.
    public func users(_ ids: [Int]) -> UserBlock {
        var block = UserBlock(
            users: Table(schema: .users), boards: Table(schema: .boards), saves: Table(schema: .saves),
            events: Table(schema: .events, including: ["p_closeup", "p_click", "p_save", "p_hide"]))
        var ev = EventBuffer()
        var users = (id: [Int64](), country: [Int32](), device: [UInt8](), signup: [Int64]())
        var boards = (id: [Int64](), owner: [Int64](), cats: [Int32]())
        var saves = (pin: [Int64](), board: [Int64](), user: [Int64](), time: [Int64]())
        for u in ids {
            generateUser(u, &ev, &users, &boards, &saves)
        }
        block.users.int64["user_id"] = users.id
        block.users.int32["country"] = users.country
        block.users.uint8["device"] = users.device
        block.users.int64["signup_at_ms"] = users.signup
        block.users.setCount(users.id.count)
        block.boards.int64["board_id"] = boards.id
        block.boards.int64["owner_id"] = boards.owner
        block.boards.int32["categories"] = boards.cats
        block.boards.setCount(boards.id.count)
        block.saves.int64["pin_id"] = saves.pin
        block.saves.int64["board_id"] = saves.board
        block.saves.int64["user_id"] = saves.user
        block.saves.int64["saved_at_ms"] = saves.time
        block.saves.setCount(saves.pin.count)
        ev.store(into: &block.events)
        return block
    }

    static let countries = ["US", "GB", "DE", "FR", "BR", "JP", "IN", "CA", "MX", "AU"].map { CountryCode.pack($0)! }

    /// Events of one user before sorting.
    struct EventBuffer {
        var id = [Int64](), user = [Int64](), pin = [Int64](), type = [UInt8](), ts = [Int64](), pos = [Int32]()
        var surface = [UInt8](), session = [Int64](), pc = [Float](), pk = [Float](), ps = [Float](), ph = [Float]()
        var userStart = 0

        mutating func add(
            _ u: Int64, _ pin: Int64, _ type: EventType, _ ts: Int64, _ pos: Int32, _ surface: UInt8, _ session: Int64,
            _ probs: (Float, Float, Float, Float)
        ) {
            user.append(u); self.pin.append(pin); self.type.append(type.rawValue); self.ts.append(ts)
            self.pos.append(pos); self.surface.append(surface); self.session.append(session)
            pc.append(probs.0); pk.append(probs.1); ps.append(probs.2); ph.append(probs.3)
        }

        /// Sorts the current user's events by time (ties by generation order) and numbers them.
        mutating func finishUser(_ u: Int) {
            let n = ts.count - userStart
            let base = userStart
            let order = (0..<n).sorted { (ts[base + $0], $0) < (ts[base + $1], $1) }
            func perm<T>(_ a: inout [T]) {
                let sub = order.map { a[base + $0] }
                a.replaceSubrange(base..<base + n, with: sub)
            }
            perm(&pin); perm(&type); perm(&ts); perm(&pos); perm(&surface); perm(&session)
            perm(&pc); perm(&pk); perm(&ps); perm(&ph)
            for k in 0..<n { id.append(Int64(u) << 20 | Int64(k)) }
            userStart = ts.count
        }

        func store(into t: inout Table) {
            t.int64["event_id"] = id; t.int64["user_id"] = user; t.int64["pin_id"] = pin
            t.uint8["event_type"] = type; t.int64["timestamp_ms"] = ts; t.int32["position"] = pos
            t.uint8["surface"] = surface; t.int64["session_id"] = session
            t.float32["p_closeup"] = pc; t.float32["p_click"] = pk; t.float32["p_save"] = ps; t.float32["p_hide"] = ph
            t.setCount(id.count)
        }
    }

    @inline(__always) static func sigmoid(_ x: Double) -> Double { 1 / (1 + Foundation.exp(-x)) }

    /// Maximum events per user (event ids are `user << 20 | k`).
    static let maxEventsPerUser = (1 << 20) - 1

    func generateUser(
        _ u: Int, _ ev: inout EventBuffer,
        _ users: inout (id: [Int64], country: [Int32], device: [UInt8], signup: [Int64]),
        _ boards: inout (id: [Int64], owner: [Int64], cats: [Int32]),
        _ saves: inout (pin: [Int64], board: [Int64], user: [Int64], time: [Int64])
    ) {
        let p = parameters
        var r = RandomStream(seed: p.seed, rank: Stream.user.rawValue, index: UInt64(u))
        let uid = Int64(u)
        let profile = drawProfile(u, &r)
        users.id.append(uid)
        users.country.append(profile.country)
        users.device.append(profile.device.rawValue)
        users.signup.append(profile.signupMs)
        let truth = profile.truth
        let interests = truth.interests
        let interestDist = CategoricalDistribution(weights: truth.weights)

        // Boards: one to four topical collections, the first on the main interest.
        let nBoards = 1 + r.int(below: 4)
        var boardTopic = [Int]()
        for k in 0..<nBoards {
            let t = k < interests.count ? interests[k] : r.int(below: p.topics)
            boardTopic.append(t)
            boards.id.append(uid << 3 | Int64(k))
            boards.owner.append(uid)
            let c0 = t * p.categoriesPerTopic + r.int(below: p.categoriesPerTopic)
            let c1 = t * p.categoriesPerTopic + r.int(below: p.categoriesPerTopic)
            boards.cats.append(contentsOf: [Int32(c0), c1 == c0 ? -1 : Int32(c1), -1, -1])
        }

        // Activity: heavy-tailed session count; power users get 5,000+ events.
        var sessions = Int(min(400, p.sessionScale * Foundation.pow(1 - r.uniform(), -1 / 1.5)))
        sessions = max(1, sessions)
        let power = p.powerUserEvery > 0 && u % p.powerUserEvery == 0
        if power { sessions = 330 + r.int(below: 100) }
        let spanDays = max(1, p.days)
        var starts = (0..<sessions).map { _ in Int64(r.uniform() * Double(Int64(spanDays) * WorldParameters.dayMs)) }
        starts.sort()

        var sessionTopic = interests[interestDist.sample(&r)]
        var total = 0
        for (s, start) in starts.enumerated() {
            // Short-term interest drifts: mostly a long-term topic, sometimes the same topic as
            // the previous session, sometimes a new topic.
            let d = r.uniform()
            if d < 0.6 {
                sessionTopic = interests[interestDist.sample(&r)]
            } else if d < 0.85 { /* keep */
            } else {
                sessionTopic = r.int(below: p.topics)
            }
            let day = Int(start / WorldParameters.dayMs)
            let visible = visiblePins(onDay: day)
            let sessionID = uid << 20 | Int64(s)
            let su = r.uniform()
            let surface =
                su < 0.8 ? Surface.home : su < 0.9 ? Surface.related : su < 0.95 ? Surface.search : Surface.board
            let length = power ? 16 + r.int(below: 8) : 8 + r.int(below: 25)
            var t = p.startMs + start
            for pos in 0..<length {
                if total + 5 >= Self.maxEventsPerUser { break }
                t += 1_000 + Int64(r.int(below: 5_000))
                let pin = samplePin(
                    &r, sessionTopic: sessionTopic, interests: interests, interestDist: interestDist, day: day,
                    visible: visible)
                let topic = topic(ofPin: pin)
                let outcome = outcomeProbabilities(truth, pin: pin, position: pos, sessionTopic: sessionTopic)
                let (pCloseup, pClick, pSave, pHide) = (outcome.closeup, outcome.click, outcome.save, outcome.hide)
                let probs = (Float(pCloseup), Float(pClick), Float(pSave), Float(pHide))
                let nan = (Float.nan, Float.nan, Float.nan, Float.nan)
                let pin64 = Int64(pin), pos32 = Int32(pos), sf = surface.rawValue
                ev.add(uid, pin64, .impression, t, pos32, sf, sessionID, probs)
                total += 1
                if r.uniform() < pCloseup {
                    let tc = t + 500 + Int64(r.int(below: 3_000))
                    ev.add(uid, pin64, .closeup, tc, pos32, sf, sessionID, nan)
                    total += 1
                    if r.uniform() < pClick / pCloseup {
                        ev.add(uid, pin64, .click, tc + 200 + Int64(r.int(below: 2_000)), pos32, sf, sessionID, nan)
                        total += 1
                    }
                    if r.uniform() < pSave / pCloseup {
                        let ts = tc + 300 + Int64(r.int(below: 4_000))
                        ev.add(uid, pin64, .save, ts, pos32, sf, sessionID, nan)
                        total += 1
                        let b = boardTopic.firstIndex(of: topic) ?? 0
                        saves.pin.append(pin64); saves.board.append(uid << 3 | Int64(b))
                        saves.user.append(uid); saves.time.append(ts)
                    }
                } else if r.uniform() < pHide / (1 - pCloseup) {
                    ev.add(uid, pin64, .hide, t + 300 + Int64(r.int(below: 1_500)), pos32, sf, sessionID, nan)
                    total += 1
                }
            }
        }
        ev.finishUser(u)
    }

    /// A pin for one feed slot: from the session topic, a long-term topic, any topic (by
    /// popularity), or yesterday's fresh pins.
    @inline(__always)
    func samplePin(
        _ r: inout RandomStream, sessionTopic: Int, interests: [Int], interestDist: CategoricalDistribution, day: Int,
        visible: Int
    ) -> Int {
        let p = parameters
        let c = r.uniform()
        if c >= 0.9, day > 0, p.freshPinsPerDay > 0 {
            return visible - p.freshPinsPerDay + r.int(below: p.freshPinsPerDay)
        }
        let topic = c < 0.5 ? sessionTopic : c < 0.75 ? interests[interestDist.sample(&r)] : r.int(below: p.topics)
        // Pins of `topic` visible today: topic, topic + T, topic + 2T, … below `visible`.
        let inTopic = max(1, (visible - topic + p.topics - 1) / p.topics)
        let rank = ZipfDistribution(n: inTopic, exponent: p.zipfExponent).sample(&r) - 1
        return min(visible - 1, rank * p.topics + topic)
    }
}

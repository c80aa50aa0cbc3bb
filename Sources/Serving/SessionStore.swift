import EventData
import Foundation

/// What the serving shard remembers of one user's session.
public struct Session: Sendable, Equatable {
    /// The events posted for the user (`POST /v1/events`), in sequence order; the oldest are
    /// dropped past `SessionStore.maxEvents`.
    public var events: [LoggedEvent] = []
    /// Pins served by `GET /v1/feed/{user}` in this session, in serving order (they leave the
    /// next feeds; forgotten when every candidate has been served).
    public var served: [Int64] = []
    /// The ranking the last feed request without a cursor computed, that its cursor pages through.
    public var ranking: [Int64] = []
    /// Identifies `ranking` in cursors (1, 2, … per session).
    public var rankingID: UInt64 = 0
    /// When a feed was last served (seconds of the service's monotonic clock).
    public var lastServedAt: Double = 0
    /// The items of `ranking` when the ranker re-scored them (their new scores), else nil.
    public var rankingItems: [FeedItem]? = nil
    /// The last online re-scoring of the user's candidates (best first) and what it depended
    /// on (run, engagements): reused while neither changes.
    public var scored: [FeedItem] = [], scoredKey = ""

    public init() {}

    /// The events as the session re-rank reads them.
    public var rerankEvents: [SessionEvent] { events.map { SessionEvent(pin: $0.pin, type: $0.type.name) } }

    /// Pins saved or hidden in the session (never served again).
    public var removed: Set<Int64> { Set(events.lazy.filter { $0.type == .save || $0.type == .hide }.map(\.pin)) }
}

/// The sessions of a shard's users, at most `capacity` (least recently used evicted first).
/// Thread-safe; every operation is O(1) apart from the work on the one session it touches.
public final class SessionStore: @unchecked Sendable {
    /// Sessions kept at most.
    public let capacity: Int
    /// Events kept per session at most (the latest).
    public let maxEvents: Int
    let lock = NSLock()
    var lru: LRU  // guarded by `lock`

    /// A store of at most `capacity` sessions of at most `maxEvents` events each.
    public init(capacity: Int = 20_000, maxEvents: Int = 256) {
        precondition(capacity >= 1 && maxEvents >= 1)
        self.capacity = capacity
        self.maxEvents = maxEvents
        lru = LRU(capacity: capacity)
    }

    /// Sessions held now.
    public var count: Int { lock.withLock { lru.slot.count } }
    /// Sessions evicted so far to stay within `capacity`.
    public var evictions: Int { lock.withLock { lru.evictions } }

    /// Adds `events` (any users, any order) to their users' sessions, each in sequence order.
    public func apply(_ events: [LoggedEvent]) {
        let byUser = Dictionary(grouping: events.sorted { $0.seq < $1.seq }, by: \.user)
        let maxEvents = self.maxEvents
        lock.withLock {
            for (user, list) in byUser {
                lru.update(user) { s in
                    // A client event id already in the session (a retry) is not applied twice.
                    let keys = Set(s.events.lazy.map(\.clientKey).filter { $0 != 0 })
                    var fresh = Set<UInt64>()
                    let list = list.filter {
                        $0.clientKey == 0 || (!keys.contains($0.clientKey) && fresh.insert($0.clientKey).inserted)
                    }
                    guard let head = list.first else { return }
                    let inOrder = s.events.last.map { $0.seq < head.seq } ?? true
                    s.events += list
                    if !inOrder { s.events.sort { $0.seq < $1.seq } }
                    if s.events.count > maxEvents { s.events.removeFirst(s.events.count - maxEvents) }
                }
            }
        }
    }

    /// The session of `user`, nil when it has none (marks it recently used).
    public func session(_ user: Int64) -> Session? { lock.withLock { lru.get(user) } }

    /// Changes (creating when missing) the session of `user`.
    public func update<T>(_ user: Int64, _ body: (inout Session) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return lru.update(user, body)
    }

    /// An LRU map over a fixed set of slots: a doubly linked list of slot indices, most recent first.
    struct LRU {
        var slot: [Int64: Int] = [:]
        var users: [Int64] = [], sessions: [Session] = [], prev: [Int] = [], next: [Int] = []
        var head = -1, tail = -1, evictions = 0
        let capacity: Int

        init(capacity: Int) { self.capacity = capacity }

        mutating func unlink(_ i: Int) {
            if prev[i] >= 0 { next[prev[i]] = next[i] } else { head = next[i] }
            if next[i] >= 0 { prev[next[i]] = prev[i] } else { tail = prev[i] }
        }

        mutating func pushFront(_ i: Int) {
            prev[i] = -1
            next[i] = head
            if head >= 0 { prev[head] = i }
            head = i
            if tail < 0 { tail = i }
        }

        mutating func get(_ user: Int64) -> Session? {
            guard let i = slot[user] else { return nil }
            if i != head {
                unlink(i)
                pushFront(i)
            }
            return sessions[i]
        }

        mutating func update<T>(_ user: Int64, _ body: (inout Session) -> T) -> T {
            let i: Int
            if let found = slot[user] {
                i = found
                if i != head {
                    unlink(i)
                    pushFront(i)
                }
            } else if users.count < capacity {
                i = users.count
                users.append(user)
                sessions.append(Session())
                prev.append(-1)
                next.append(-1)
                slot[user] = i
                pushFront(i)
            } else {
                i = tail  // evict the least recently used session and reuse its slot
                unlink(i)
                slot[users[i]] = nil
                evictions += 1
                users[i] = user
                sessions[i] = Session()
                slot[user] = i
                pushFront(i)
            }
            return body(&sessions[i])
        }
    }
}

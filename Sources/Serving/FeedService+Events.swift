import EventData
import Foundation
import Hummingbird

/// Any JSON value, to validate a request field by field with messages naming the field.
enum JSONValue: Decodable, Sendable {
    case int(Int64), number(Double), string(String), bool(Bool), null, other

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        // Integers and strings first: what events hold (each failed try costs a thrown error).
        if c.decodeNil() {
            self = .null
        } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else {
            self = .other
        }
    }
}

extension FeedService {
    /// `POST /v1/events`' body: `{"events":[{"user":1,"pin":2,"type":"save","ts":1700000000000},…]}`.
    struct EventsBody: Decodable {
        var events: [[String: JSONValue]]?
    }

    /// `POST /v1/events`' answer: how many events were acknowledged (durable) and their
    /// sequence numbers.
    public struct EventsAnswer: ResponseEncodable, Decodable, Sendable {
        /// Events acknowledged (written and synced).
        public var accepted: Int
        /// Sequence numbers of the first and last of them (consecutive).
        public var first_seq: UInt64?, last_seq: UInt64?
        /// Events of the batch dropped because their client `id` was already logged for their
        /// user (a retry): durable already, not logged again.
        public var duplicates: Int? = nil
    }

    /// The fields an event may carry.
    static let eventFields: Set<String> = ["user", "pin", "type", "ts", "position", "surface", "session", "id"]

    /// Validates the JSON body of `POST /v1/events` into events (400 naming the index and field
    /// of the first bad one; 421 for a user of another shard). `now` stamps events without `ts`.
    public func parseEvents(_ data: Data, now: Int64) throws -> [LoggedEvent] {
        let body: EventsBody
        do { body = try JSONDecoder().decode(EventsBody.self, from: data) } catch {
            throw HTTPError(.badRequest, message: "body is not a JSON object {\"events\":[…]}: \(Self.describe(error))")
        }
        guard let raw = body.events else { throw HTTPError(.badRequest, message: "body has no 'events' array") }
        guard !raw.isEmpty else { throw HTTPError(.badRequest, message: "'events' is empty") }
        guard raw.count <= limits.maxEventsPerRequest else {
            throw HTTPError(
                .badRequest, message: "\(raw.count) events; at most \(limits.maxEventsPerRequest) per request")
        }
        let store = runs.current.store
        var events: [LoggedEvent] = []
        events.reserveCapacity(raw.count)
        for (i, e) in raw.enumerated() {
            func bad(_ field: String, _ why: String) -> HTTPError {
                HTTPError(.badRequest, message: "events[\(i)].\(field): \(why)")
            }
            if let unknown = e.keys.sorted().first(where: { !Self.eventFields.contains($0) }) {
                throw bad(
                    unknown.prefix(64).description,
                    "unknown field (fields: \(Self.eventFields.sorted().joined(separator: ", ")))")
            }
            func int(_ field: String, _ range: ClosedRange<Int64>, default value: Int64? = nil) throws -> Int64 {
                switch e[field] {
                case .int(let v)?:
                    guard range.contains(v) else {
                        throw bad(field, "\(v) is out of range \(range.lowerBound)…\(range.upperBound)")
                    }
                    return v
                case nil, .null?:
                    guard let value else { throw bad(field, "missing") }
                    return value
                default: throw bad(field, "not an integer")
                }
            }
            func name<T>(_ field: String, _ names: [String], _ make: (Int) -> T, default value: T? = nil) throws -> T {
                switch e[field] {
                case .string(let s)?:
                    guard let j = names.firstIndex(of: s) else {
                        throw bad(field, "'\(s.prefix(64))' is not one of \(names.joined(separator: ", "))")
                    }
                    return make(j)
                case nil, .null?:
                    guard let value else { throw bad(field, "missing") }
                    return value
                default: throw bad(field, "not a string")
                }
            }
            let user = try int("user", 0...Int64.max)
            guard store.owns(user) else {
                throw HTTPError(
                    .misdirectedRequest,
                    message: "events[\(i)].user: user \(user) is served by shard "
                        + "\(Int(user.magnitude % UInt64(store.shards))) of \(store.shards), not \(store.shard)")
            }
            var clientKey: UInt64 = 0
            switch e["id"] {
            case .string(let id)?:
                guard (1...64).contains(id.utf8.count) else { throw bad("id", "must be 1…64 bytes long") }
                clientKey = LoggedEvent.clientKey(id)
            case nil, .null?: break
            default: throw bad("id", "not a string")
            }
            events.append(
                LoggedEvent(
                    user: user, pin: try int("pin", 0...Int64.max),
                    type: try name("type", EventType.names) { EventType.allCases[$0] },
                    timestampMs: try int("ts", 0...4_102_444_800_000, default: now),
                    position: Int32(try int("position", 0...1_000_000, default: 0)),
                    surface: try name("surface", Surface.names, { Surface.allCases[$0] }, default: .home),
                    session: try int("session", 0...Int64.max, default: 0), clientKey: clientKey))
        }
        return events
    }

    /// Validates, logs durably (the answer comes after the `fsync`) and applies a batch of
    /// events to the sessions. 503 when no log is configured or the log has failed.
    public func acceptEvents(_ data: Data) async throws -> EventsAnswer {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let events: [LoggedEvent]
        do { events = try parseEvents(data, now: now) } catch {
            metrics.events(
                rejected: max(1, (try? JSONDecoder().decode(EventsBody.self, from: data))?.events?.count ?? 1))
            throw error
        }
        guard let log else {
            throw HTTPError(
                .serviceUnavailable,
                message: "this shard has no event log (start it with --wal-dir); nothing was stored")
        }
        let acked: [LoggedEvent]
        do { acked = try await log.append(events) } catch {
            metrics.events(rejected: events.count)
            throw HTTPError(.serviceUnavailable, message: "the event log failed, nothing was acknowledged: \(error)")
        }
        sessions.apply(acked)
        metrics.events(accepted: acked.count)
        var answer = EventsAnswer(accepted: acked.count, first_seq: acked.first?.seq, last_seq: acked.last?.seq)
        if acked.count < events.count { answer.duplicates = events.count - acked.count }
        return answer
    }

    /// A decoding error in one line.
    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let c): return "not valid JSON (\(c.debugDescription))"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            let path = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return "\(path.isEmpty ? "the body" : String(path.drop { $0 == "." })): \(c.debugDescription)"
        default: return "\(error)"
        }
    }
}

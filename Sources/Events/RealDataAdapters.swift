import Collective
import EventData
import Foundation

/// Where the shared real datasets live: `$MOSAIC_SHARED`, else `../shared/data` relative to the
/// package root (or to the current directory). Nil when absent.
public enum SharedData {
    /// The folder holding `amazon-games/`, `s3rec-beauty/`, `frappe/`, or nil.
    public static func root(packageRoot: String? = nil) -> URL? {
        let fm = FileManager.default
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["MOSAIC_SHARED"], !env.isEmpty { candidates.append(env) }
        if let packageRoot { candidates.append((packageRoot as NSString).appendingPathComponent("../shared/data")) }
        candidates.append((fm.currentDirectoryPath as NSString).appendingPathComponent("../shared/data"))
        for c in candidates {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: c, isDirectory: &isDir), isDir.boolValue {
                return URL(fileURLWithPath: c).standardizedFileURL
            }
        }
        return nil
    }
}

/// Converts the real datasets of ../shared/data into the Mosaic tables (the same layout as
/// `mosaic generate` and `mosaic ingest`). The files are a few MB, so every rank parses the
/// whole file and keeps the rows it owns (users by `user_id`, pins by `pin_id`).
///
/// Mapping (see the README, section Data):
/// - Amazon Games / Beauty: each action is a `save` event; the datasets have no timestamps, so
///   the k-th action of a user gets `timestamp_ms = 1e12 + k·1000` (order preserved, which is
///   all the leave-one-out protocol uses); `session_id` = user; pins have no content embedding
///   (a (n, 1) zero column). Beauty's item attributes become `tags` (unique, sorted) and
///   `category` (the item's most frequent attribute corpus-wide; ties to the smaller id).
/// - Frappe: every row is an `impression` of pin `item − 957` by user `user`, with a `click`
///   1 ms later when `label` is 1; `session_id` = the row's global index; rows are numbered train,
///   then valid, then test, and `timestamp_ms = 1e12 + row·1000`, so a time cut at the first valid
///   row reproduces the BARS split. The 8 context fields go to an extra `context` (n, 8) dataset
///   and the split to `split` (uint8: 0 train, 1 valid, 2 test), on impression rows; click rows
///   repeat their impression's values.
public struct RealDataAdapter {
    /// A converted dataset (this rank's shard).
    public struct Converted: Sendable {
        public var users: Table, pins: Table, events: Table
        /// Extra event columns (name → (values, width)), aligned with `events` rows.
        public var extraEventColumns: [String: (values: [Int32], width: Int)] = [:]
        /// Totals over the whole dataset (all ranks).
        public var totalUsers = 0, totalItems = 0, totalActions = 0
    }

    static let baseMs: Int64 = 1_000_000_000_000

    /// Amazon Games `Video.txt` (SASRec format: `user item` per line).
    public static func amazonGames(path: String, rank: Int = 0, ranks: Int = 1) throws -> Converted {
        sequences(try ItemSequences.read(path: path, format: .sasrec), attributes: nil, rank: rank, ranks: ranks)
    }

    /// S3-Rec `Beauty.txt` (`user i1 i2 …` per line) and `Beauty_item2attributes.json`.
    public static func beauty(path: String, attributesPath: String, rank: Int = 0, ranks: Int = 1) throws -> Converted {
        sequences(
            try ItemSequences.read(path: path, format: .s3rec),
            attributes: try ItemSequences.readAttributes(path: attributesPath), rank: rank, ranks: ranks)
    }

    /// Any item-sequence dataset (S3-Rec or SASRec format) with optional item attributes
    /// (they become `tags` and `category`).
    public static func sequences(
        _ data: ItemSequences, attributes: [Int64: [Int32]]?, rank: Int = 0, ranks: Int = 1
    ) -> Converted {
        var byUser: [Int64: [Int64]] = [:]
        for (u, items) in zip(data.users, data.items) { byUser[u] = items }
        return sequencesToTables(
            order: data.users, sequences: byUser, itemCount: data.itemCount, tags: attributes, rank: rank,
            ranks: ranks)
    }

    static func sequencesToTables(
        order: [Int64], sequences: [Int64: [Int64]], itemCount: Int, tags: [Int64: [Int32]]?, rank: Int, ranks: Int
    ) -> Converted {
        var users = Table(schema: .users)
        var events = Table(schema: .events)
        var eventID: Int64 = 0
        var e = (id: [Int64](), user: [Int64](), pin: [Int64](), ts: [Int64]())
        var myUsers: [Int64] = []
        for u in order {
            let seq = sequences[u]!
            defer { eventID += Int64(seq.count) }
            guard Sharding.owner(u, ranks: ranks) == rank else { continue }
            myUsers.append(u)
            for (k, item) in seq.enumerated() {
                e.id.append(eventID + Int64(k)); e.user.append(u); e.pin.append(item);
                e.ts.append(baseMs + Int64(k) * 1000)
            }
        }
        let n = e.id.count
        events.int64["event_id"] = e.id; events.int64["user_id"] = e.user; events.int64["pin_id"] = e.pin
        events.uint8["event_type"] = [UInt8](repeating: EventType.save.rawValue, count: n)
        events.int64["timestamp_ms"] = e.ts
        events.int32["position"] = [Int32](repeating: 0, count: n)
        events.uint8["surface"] = [UInt8](repeating: Surface.home.rawValue, count: n)
        events.int64["session_id"] = e.user
        events.setCount(n)
        events = Ingestor.sorted(events)
        users.int64["user_id"] = myUsers.sorted()
        users.int32["country"] = [Int32](repeating: CountryCode.pack("ZZ")!, count: myUsers.count)
        users.uint8["device"] = [UInt8](repeating: Device.other.rawValue, count: myUsers.count)
        users.int64["signup_at_ms"] = [Int64](repeating: 0, count: myUsers.count)
        users.setCount(myUsers.count)
        let pins = itemTable(itemCount: itemCount, tags: tags, rank: rank, ranks: ranks)
        return Converted(
            users: users, pins: pins, events: events, totalUsers: order.count, totalItems: itemCount,
            totalActions: order.reduce(0) { $0 + sequences[$1]!.count })
    }

    /// Items `1 ... itemCount` owned by `rank`, with categories and tags from `tags`.
    static func itemTable(itemCount: Int, tags: [Int64: [Int32]]?, rank: Int, ranks: Int, firstID: Int64 = 1) -> Table {
        var frequency: [Int32: Int] = [:]
        for v in (tags ?? [:]).values { for a in v { frequency[a, default: 0] += 1 } }
        var pins = Table(schema: .pins(dimension: 1), including: tags == nil ? [] : ["tags"])
        let ids = (firstID..<firstID + Int64(itemCount)).filter { Sharding.owner($0, ranks: ranks) == rank }
        pins.int64["pin_id"] = ids
        pins.int32["category"] = ids.map { id in
            let t = tags?[id] ?? []
            return t.max { (frequency[$0]!, -$0) < (frequency[$1]!, -$1) } ?? 0
        }
        pins.int64["created_at_ms"] = [Int64](repeating: 0, count: ids.count)
        pins.int64["creator_id"] = [Int64](repeating: 0, count: ids.count)
        pins.float32["embedding"] = [Float](repeating: 0, count: ids.count)
        if let tags {
            pins.int32["tags"] = ids.flatMap { id -> [Int32] in
                let t = Array((tags[id] ?? []).prefix(8))
                return t + [Int32](repeating: -1, count: 8 - t.count)
            }
        }
        pins.setCount(ids.count)
        return pins
    }

    /// Frappe (BARS Frappe_x1): `train.csv`, `valid.csv`, `test.csv` in `directory`.
    public static func frappe(directory: String, rank: Int = 0, ranks: Int = 1) throws -> Converted {
        struct Row { var user: Int64, item: Int64, label: Bool, context: [Int32], split: Int32, index: Int64 }
        var byUser: [Int64: [Row]] = [:]
        var index: Int64 = 0
        var total = 0
        var maxUser: Int64 = 0
        for (split, name) in ["train.csv", "valid.csv", "test.csv"].enumerated() {
            let path = (directory as NSString).appendingPathComponent(name)
            try forEachLine(path) { line, number in
                if number == 1 {
                    guard line.starts(with: Array("label,user,item".utf8)) else {
                        throw IngestError(
                            file: path, row: 1, reason: "missing_header",
                            message: "expected the header label,user,item,daytime,…")
                    }
                    return
                }
                let f = line.split(separator: 44).map { Int64(String(decoding: $0, as: UTF8.self)) }
                guard f.count == 11, f.allSatisfy({ $0 != nil }), f[0]! == 0 || f[0]! == 1, (957...5038).contains(f[2]!)
                else {
                    throw IngestError(
                        file: path, row: Int64(number), reason: "bad_line",
                        message: "expected label and 10 feature indices")
                }
                let u = f[1]!
                maxUser = max(maxUser, u)
                total += 1
                defer { index += 1 }
                guard Sharding.owner(u, ranks: ranks) == rank else { return }
                byUser[u, default: []].append(
                    Row(
                        user: u, item: f[2]! - 957, label: f[0]! == 1, context: f[3...].map { Int32($0!) },
                        split: Int32(split), index: index))
            }
        }
        var events = Table(schema: .events)
        var e = (id: [Int64](), user: [Int64](), pin: [Int64](), type: [UInt8](), ts: [Int64](), session: [Int64]())
        var context: [Int32] = [], splits: [Int32] = []
        for u in byUser.keys.sorted() {
            for r in byUser[u]! {
                let t = baseMs + r.index * 1000
                for click in r.label ? [false, true] : [false] {
                    e.id.append(2 * r.index + (click ? 1 : 0)); e.user.append(u); e.pin.append(r.item)
                    e.type.append(click ? EventType.click.rawValue : EventType.impression.rawValue)
                    e.ts.append(t + (click ? 1 : 0)); e.session.append(r.index)
                    context += r.context
                    splits.append(r.split)
                }
            }
        }
        let n = e.id.count
        events.int64["event_id"] = e.id; events.int64["user_id"] = e.user; events.int64["pin_id"] = e.pin
        events.uint8["event_type"] = e.type; events.int64["timestamp_ms"] = e.ts
        events.int32["position"] = [Int32](repeating: 0, count: n)
        events.uint8["surface"] = [UInt8](repeating: Surface.home.rawValue, count: n)
        events.int64["session_id"] = e.session
        events.setCount(n)
        var users = Table(schema: .users)
        let myUsers = (0...maxUser).filter { Sharding.owner($0, ranks: ranks) == rank }
        users.int64["user_id"] = myUsers
        users.int32["country"] = [Int32](repeating: CountryCode.pack("ZZ")!, count: myUsers.count)
        users.uint8["device"] = [UInt8](repeating: Device.other.rawValue, count: myUsers.count)
        users.int64["signup_at_ms"] = [Int64](repeating: 0, count: myUsers.count)
        users.setCount(myUsers.count)
        let pins = itemTable(itemCount: 4_082, tags: nil, rank: rank, ranks: ranks, firstID: 0)
        var out = Converted(
            users: users, pins: pins, events: events, totalUsers: Int(maxUser) + 1, totalItems: 4_082,
            totalActions: total)
        out.extraEventColumns = ["context": (context, 8), "split": (splits, 1)]
        return out
    }

    /// Calls `body(line, 1-based line number)` for every line (LF or CRLF; a last line without
    /// newline included; empty lines skipped).
    static func forEachLine(_ path: String, _ body: (ArraySlice<UInt8>, Int) throws -> Void) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw IngestError(file: path, row: 0, reason: "unreadable", message: "cannot read the file")
        }
        let bytes = [UInt8](data)
        var start = 0, number = 0
        while start < bytes.count {
            var end = bytes[start...].firstIndex(of: 10) ?? bytes.count
            let next = end + 1
            number += 1
            if end > start, bytes[end - 1] == 13 { end -= 1 }
            if end > start { try body(bytes[start..<end], number) }
            start = next
        }
    }
}

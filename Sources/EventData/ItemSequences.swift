import Foundation

/// The two public text formats of users' item sequences (1-based positive integer ids, one
/// space between fields, time order within a user):
/// - `s3rec`: one line per user, `user item item …` (S3-Rec's `Beauty.txt`);
/// - `sasrec`: one line per action, `user item` (SASRec's `Video.txt`; a user's lines in time
///   order, users in order of first appearance).
public enum SequenceFormat: String, CaseIterable, Sendable {
    case s3rec, sasrec
}

/// Users' item sequences read from a file in the S3-Rec or SASRec format, with optional item
/// attributes (S3-Rec's `*_item2attributes.json`: item id → [attribute ids]).
///
/// Memory: the whole file (these sets are a few MB; larger data goes through `mosaic ingest`).
public struct ItemSequences: Sendable {
    /// User ids, in order of first appearance in the file.
    public var users: [Int64]
    /// `items[u]`: user `users[u]`'s items in time order.
    public var items: [[Int64]]
    /// The largest item id (items are `1 ... itemCount`).
    public var itemCount: Int
    /// The file it was read from.
    public var path: String

    /// Reads `path` in `format`; keeps only the first `maxUsers` users when given.
    ///
    /// - Throws: `IngestError` naming the file, the line and what was expected.
    public static func read(path: String, format: SequenceFormat, maxUsers: Int? = nil) throws -> ItemSequences {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw IngestError(file: path, row: 0, reason: "unreadable", message: "cannot read the file")
        }
        var users: [Int64] = [], items: [[Int64]] = [], index: [Int64: Int] = [:]
        var maxItem: Int64 = 0
        var lineNumber = 0
        for rawLine in data.split(separator: 10, omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = rawLine
            if line.last == 13 { line = line.dropLast() }
            if line.isEmpty { continue }
            let fields = line.split(separator: 32).map { Int64(String(decoding: $0, as: UTF8.self)) }
            switch format {
            case .s3rec:
                guard fields.count >= 2, fields.allSatisfy({ ($0 ?? 0) > 0 }) else {
                    throw IngestError(
                        file: path, row: Int64(lineNumber), reason: "bad_line",
                        message: "expected 'user item item …' (positive integers; S3-Rec format)")
                }
                if let maxUsers, users.count >= maxUsers { continue }
                let u = fields[0]!
                guard index[u] == nil else {
                    throw IngestError(
                        file: path, row: Int64(lineNumber), reason: "duplicate_user",
                        message: "user \(u) has a second line; the S3-Rec format has one line per user")
                }
                index[u] = users.count
                users.append(u)
                let seq = fields.dropFirst().map { $0! }
                items.append(seq)
                maxItem = max(maxItem, seq.max()!)
            case .sasrec:
                guard fields.count == 2, let u = fields[0], let i = fields[1], u > 0, i > 0 else {
                    throw IngestError(
                        file: path, row: Int64(lineNumber), reason: "bad_line",
                        message:
                            "expected 'user item' (two positive integers; SASRec format), found '\(String(decoding: line.prefix(60), as: UTF8.self))'"
                    )
                }
                if index[u] == nil {
                    if let maxUsers, users.count >= maxUsers { continue }
                    index[u] = users.count
                    users.append(u)
                    items.append([])
                }
                items[index[u]!].append(i)
                maxItem = max(maxItem, i)
            }
        }
        guard !users.isEmpty else {
            throw IngestError(file: path, row: 0, reason: "empty_file", message: "no sequences")
        }
        return ItemSequences(users: users, items: items, itemCount: Int(maxItem), path: path)
    }

    /// Item attributes from an S3-Rec `*_item2attributes.json` (an object of item id → [attribute
    /// ids]); each item's attributes unique and sorted.
    public static func readAttributes(path: String) throws -> [Int64: [Int32]] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw IngestError(file: path, row: 0, reason: "unreadable", message: "cannot read the file")
        }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: [Int]] else {
            throw IngestError(
                file: path, row: 1, reason: "bad_json", message: "expected an object of item id → [attribute ids]")
        }
        var tags: [Int64: [Int32]] = [:]
        for (key, values) in json {
            guard let item = Int64(key) else {
                throw IngestError(
                    file: path, row: 1, reason: "bad_item_id", message: "key '\(key.prefix(40))' is not an item id")
            }
            tags[item] = Array(Set(values.map(Int32.init))).sorted()
        }
        return tags
    }
}

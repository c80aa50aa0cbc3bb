import Collective
import EventData
import Foundation

/// Imports CSV/TSV files into a sharded dataset run, using every rank.
///
/// Per entity (users, pins, boards, saves, events — referenced entities first): every rank
/// parses its byte range and validates each row; duplicate ids are found by asking the id's
/// owner rank (the row earliest in the file is kept); rows are routed to their shard owner
/// (`alltoallv`); foreign keys are checked against the entities imported in the same job by
/// asking the key's owner; rows are sorted (events by user, time, event id). Rejected rows are
/// gathered, sorted by file and line, and written to the rejects file. The import fails (nothing
/// published) when rejected rows exceed `maxRejectRate` of all data rows.
public struct Ingestor {
    /// What to import: entity name → file path.
    public var files: [String: String]
    /// Delimiter override (nil: by file extension).
    public var delimiter: UInt8?
    /// Pin embedding width (nil: counted from the first data row of the pins file).
    public var dimension: Int?
    /// Largest accepted fraction of rejected rows (duplicates do not count), 0 … 1.
    public var maxRejectRate: Double

    public init(files: [String: String], delimiter: UInt8? = nil, dimension: Int? = nil, maxRejectRate: Double = 0.01) {
        self.files = files
        self.delimiter = delimiter
        self.dimension = dimension
        self.maxRejectRate = maxRejectRate
    }

    /// Totals over all ranks.
    public struct Summary: Sendable {
        public var dataRows = 0, accepted = 0, rejected = 0, duplicates = 0, bytes = 0
        /// Accepted rows per entity.
        public var acceptedByEntity: [String: Int] = [:]
        /// Rejected rows per reason (duplicates included).
        public var byReason: [String: Int] = [:]
    }

    /// The validated, routed, sorted tables of this rank, with the (global, sorted) rejects on
    /// rank 0.
    public struct Result: Sendable {
        public var tables: [String: Table]
        public var rejects: [RejectRecord]
        public var summary: Summary
    }

    /// Collective: runs the import up to (not including) writing. `progress` is called on
    /// every rank after each entity with (entity, rows accepted here, rows parsed here).
    /// `parsing(file, bytesDone, bytesOfRange, rows)` reports progress within each file.
    public func run(
        comm: Communicator, progress: (String, Int, Int) -> Void = { _, _, _ in },
        parsing: (String, Int, Int, Int) -> Void = { _, _, _, _ in }
    ) throws -> Result {
        var tables: [String: Table] = [:]
        var keySets: [String: Set<Int64>] = [:]
        var rejects: [RejectRecord] = []
        var local = [Int](repeating: 0, count: 3)  // data rows, duplicates, bytes
        for entity in EntitySchema.entityNames {
            guard let path = files[entity] else { continue }
            var dim = 1
            if entity == "pins" {
                if let dimension {
                    dim = dimension
                } else {
                    dim = try Self.inferDimension(
                        path: path, delimiter: delimiter ?? CSVParser.delimiter(forPath: path))
                }
            }
            let schema = EntitySchema.named(entity, dimension: dim)!
            let parser = CSVParser(
                path: path, schema: schema, delimiter: delimiter ?? CSVParser.delimiter(forPath: path))
            let parsed = try parser.parse(comm: comm) { parsing(path, $0, $1, $2) }
            local[0] += parsed.dataRows
            local[2] += parsed.bytes
            rejects += parsed.rejects
            var table = parsed.table

            // Duplicates: the owner of each id keeps the row with the smallest line number.
            if let key = schema.primaryKey {
                let ids = table.i64(key), rows = table.i64("_row")
                let keep = try askOwners(keys: ids, payload: rows, comm: comm) { keys, rows in
                    var first: [Int64: Int64] = [:]
                    first.reserveCapacity(keys.count)
                    for (k, r) in zip(keys, rows) { first[k] = min(first[k] ?? .max, r) }
                    return zip(keys, rows).map { k, r in first[k] == r ? 1 : 0 }
                }
                var kept: [Int] = []
                for i in 0..<table.count {
                    if keep[i] == 1 { kept.append(i); continue }
                    local[1] += 1
                    rejects.append(
                        RejectRecord(
                            file: path, row: rows[i], field: key, reason: .duplicateID,
                            detail: "\(key) \(ids[i]) already appeared earlier in the file"))
                }
                if kept.count != table.count { table.permute(kept) }
            }

            // Route to the shard owner.
            let destination = table.i64(schema.shardKey).map { Sharding.owner($0, ranks: comm.size) }
            table = try table.route(to: destination, comm: comm)

            // Foreign keys against entities imported in this job.
            for (column, target) in schema.foreignKeys {
                // Ranks agree on whether `target` was imported: it depends on `files` only.
                guard files[target] != nil, let set = keySets[target] else { continue }
                let values = table.i64(column)
                let found = try askOwners(keys: values, payload: [Int64](repeating: 0, count: values.count), comm: comm)
                { keys, _ in
                    keys.map { set.contains($0) ? 1 : 0 }
                }
                var kept: [Int] = []
                let rows = table.i64("_row")
                for i in 0..<table.count {
                    if found[i] == 1 { kept.append(i); continue }
                    rejects.append(
                        RejectRecord(
                            file: path, row: rows[i], field: column, reason: .unknownReference,
                            detail: "no \(target) row has id \(values[i])"))
                }
                if kept.count != table.count { table.permute(kept) }
            }

            table.permute(Self.sortOrder(table))
            // Keep this rank's ids only when a later file references this entity.
            let referenced = files.keys.contains { other in
                EntitySchema.named(other, dimension: 1)!.foreignKeys.contains { $0.entity == entity }
            }
            if referenced, let key = schema.primaryKey { keySets[entity] = Set(table.i64(key)) }
            tables[entity] = table
            progress(entity, table.count, parsed.dataRows)
        }

        // Gather rejects on rank 0, sorted by (entity order, line, field).
        let order = Dictionary(
            uniqueKeysWithValues: EntitySchema.entityNames.compactMap { e in
                files[e].map { ($0, EntitySchema.entityNames.firstIndex(of: e)!) }
            })
        let text = rejects.map(\.tsv).joined(separator: "\n")
        let (bytes, _) = try comm.gatherv(Array(text.utf8) + (rejects.isEmpty ? [] : [10]), root: 0)
        var all: [RejectRecord] = []
        if comm.isRoot {
            for line in bytes.split(separator: 10) {
                let f = line.split(separator: 9, maxSplits: 4, omittingEmptySubsequences: false).map {
                    String(decoding: $0, as: UTF8.self)
                }
                all.append(
                    RejectRecord(
                        file: f[0], row: Int64(f[1])!, field: f[2], reason: RejectReason(rawValue: f[3])!, detail: f[4])
                )
            }
            all.sort { (order[$0.file] ?? 0, $0.row, $0.field) < (order[$1.file] ?? 0, $1.row, $1.field) }
        }

        var totals = [Int64(local[0]), Int64(local[1]), Int64(local[2]), Int64(rejects.count)]
        for e in EntitySchema.entityNames { totals.append(Int64(tables[e]?.count ?? 0)) }
        for reason in RejectReason.allCases { totals.append(Int64(rejects.filter { $0.reason == reason }.count)) }
        try comm.allreduce(&totals)
        var summary = Summary()
        summary.dataRows = Int(totals[0])
        summary.duplicates = Int(totals[1])
        summary.bytes = Int(totals[2])
        summary.rejected = Int(totals[3]) - summary.duplicates
        for (i, e) in EntitySchema.entityNames.enumerated() where files[e] != nil {
            summary.acceptedByEntity[e] = Int(totals[4 + i])
        }
        summary.accepted = summary.acceptedByEntity.values.reduce(0, +)
        for (i, reason) in RejectReason.allCases.enumerated() where totals[4 + EntitySchema.entityNames.count + i] > 0 {
            summary.byReason[reason.rawValue] = Int(totals[4 + EntitySchema.entityNames.count + i])
        }
        for (e, t) in tables {
            var t = t
            t.int64["_row"] = nil
            tables[e] = t
        }
        return Result(tables: tables, rejects: all, summary: summary)
    }

    /// Sorts rows into their on-disk order: events by (user, time, event id); saves by (pin,
    /// time, user, board); other entities by their id.
    static func sorted(_ t0: Table) -> Table {
        var t = t0
        t.permute(sortOrder(t))
        return t
    }

    /// The row order of `sorted`.
    static func sortOrder(_ t: Table) -> [Int] {
        let order: [Int]
        switch t.schema.name {
        case "events":
            let u = t.i64("user_id"), ts = t.i64("timestamp_ms"), id = t.i64("event_id")
            order = (0..<t.count).sorted { (u[$0], ts[$0], id[$0]) < (u[$1], ts[$1], id[$1]) }
        case "saves":
            let p = t.i64("pin_id"), ts = t.i64("saved_at_ms"), u = t.i64("user_id"), b = t.i64("board_id"),
                r = t.i64("_row")
            order = (0..<t.count).sorted { (p[$0], ts[$0], u[$0], b[$0], r[$0]) < (p[$1], ts[$1], u[$1], b[$1], r[$1]) }
        default:
            let k = t.i64(t.schema.primaryKey!)
            order = (0..<t.count).sorted { k[$0] < k[$1] }
        }
        return order
    }

    /// The number of space-separated values in the `embedding` field of the first data row.
    static func inferDimension(path: String, delimiter: UInt8) throws -> Int {
        let (_, header, second) = try CSVParser.firstLines(path: path)
        let names = header.split(separator: delimiter, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        guard let k = names.firstIndex(of: "embedding"), let second else { return 1 }
        let fields = second.split(separator: delimiter, omittingEmptySubsequences: false)
        guard k < fields.count else { return 1 }
        return max(1, fields[k].split(separator: 32).count)
    }

    /// Writes `rejects` as TSV with a header (`file row field reason detail`).
    public static func writeRejects(_ rejects: [RejectRecord], to path: String) throws {
        var text = "file\trow\tfield\treason\tdetail\n"
        for r in rejects { text += r.tsv + "\n" }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }
}

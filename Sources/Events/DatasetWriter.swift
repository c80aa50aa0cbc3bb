import Artifacts
import Collective
import EventData
import Foundation
import Publishing

/// Writes one Mosaic dataset run: for every entity, one shard file per rank
/// (`<entity>/part-RRRRR-of-SSSSS.h5`, group `/<entity>`), then the manifest (collective
/// `commit`). Every shard file carries the attributes `schema_version`, `producer`, `entity`,
/// `sharded_by`, `shard_rank`, `shard_count` and `rows`.
public final class DatasetWriter {
    public let run: RunWriter
    let comm: Communicator
    let producer: String
    private var open: [String: (file: H5File, path: String, writer: TableWriter)] = [:]
    /// Rows written by this rank per entity.
    public private(set) var rows: [String: Int] = [:]

    /// Starts a run under `root` (collective).
    public init(root: URL, runID: String, producer: String, config: [String: String], comm: Communicator) throws {
        run = try RunWriter(root: root, runID: runID, producer: producer, config: config, comm: comm)
        self.comm = comm
        self.producer = producer
    }

    /// The block writer of `schema`'s shard on this rank (created on first use with `columns`).
    public func writer(_ schema: EntitySchema, columns: [ColumnSpec]? = nil) throws -> TableWriter {
        if let w = open[schema.name] { return w.writer }
        let path = try run.shardPath(artifact: schema.name)
        let file = try H5File(path: path, mode: .create)
        let root = file.root
        try root.setAttribute("schema_version", EntitySchema.version)
        try root.setAttribute("producer", producer)
        try root.setAttribute("entity", schema.name)
        try root.setAttribute("sharded_by", schema.shardKey)
        try root.setAttribute("shard_rank", Int64(comm.rank))
        try root.setAttribute("shard_count", Int64(comm.size))
        let w = try TableWriter(file: file, schema: schema, columns: columns ?? schema.columns.filter { !$0.optional })
        open[schema.name] = (file, path, w)
        return w
    }

    /// Appends `table`'s rows to this rank's shard of its entity.
    public func append(_ table: Table) throws {
        try writer(table.schema, columns: table.presentColumns).append(table)
    }

    /// Closes every shard, records it, and publishes the run (collective). Every rank must have
    /// written (possibly empty) shards of the same entities.
    @discardableResult
    public func commit() throws -> Manifest {
        for name in open.keys.sorted() {
            let o = open[name]!
            try o.writer.finish()
            try o.file.root.setAttribute("rows", Int64(o.writer.rows))
            try o.file.flush()
            rows[name] = o.writer.rows
        }
        let closing = open
        open = [:]
        for name in closing.keys.sorted() {
            let path = closing[name]!.path
            try run.record(artifact: name, path: path, rows: rows[name]!)
        }
        return try run.commit()
    }
}

/// Reading a dataset run across ranks.
extension DatasetReader {
    /// The shards this rank reads when `size` ranks share a run written by any number of ranks:
    /// shard `i` goes to rank `i mod size`. Each shard keeps a user's (or pin's) rows together.
    public func myShards(_ entity: String, comm: Communicator) throws -> [String] {
        try shards(entity).enumerated().filter { $0.offset % comm.size == comm.rank }.map(\.element)
    }

    /// Collective: the rank-count-independent digest of `entity` over all shards (each rank
    /// digests its shards; partial sums are combined). Events are digested with their ordinal
    /// within the user's sequence, so a different time order changes the digest.
    public func digest(_ entity: String, comm: Communicator) throws -> (rows: Int, digest: UInt64) {
        var rows = 0
        var sum: UInt64 = 0
        for path in try myShards(entity, comm: comm) {
            let t = try Self.readShard(path, entity: entity)
            rows += t.count
            sum &+= t.digest(ordinal: entity == "events" ? t.ordinals(groupedBy: "user_id") : nil)
        }
        let (all, _) = try comm.allgatherv([UInt64(rows), sum])
        var total: UInt64 = 0, n: UInt64 = 0
        for i in stride(from: 0, to: all.count, by: 2) {
            n &+= all[i]
            total &+= all[i + 1]
        }
        return (Int(n), total)
    }
}

extension DatasetWriter {
    /// Writes a converted real dataset (users, pins, events and the extra event columns) and
    /// publishes the run (collective).
    @discardableResult
    public func write(_ c: RealDataAdapter.Converted) throws -> Manifest {
        for t in [c.users, c.pins, c.events] {
            _ = try writer(t.schema, columns: t.presentColumns)
            try append(t)
        }
        let group = try writer(.events).group
        for (name, column) in c.extraEventColumns.sorted(by: { $0.key < $1.key }) {
            let rows = column.values.count / column.width
            try group.write(name, column.values, shape: column.width == 1 ? [rows] : [rows, column.width])
        }
        return try commit()
    }
}

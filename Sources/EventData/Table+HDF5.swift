import Artifacts
import Foundation

/// Writes a table into group `/<entity>` of a shard file, one dataset per column, in blocks
/// (`append`) so that a producer never holds more than one block in memory.
///
/// Datasets are chunked and extendable along rows; `(n,)` for width 1 and `(n, width)` otherwise.
public final class TableWriter {
    public let group: H5Group
    public let schema: EntitySchema
    private var datasets: [String: H5Dataset] = [:]
    /// Rows written so far.
    public private(set) var rows = 0

    /// Creates `/<schema.name>` in `file` with datasets for the columns of `columns`
    /// (`schema` columns present in a table).
    public init(file: H5File, schema: EntitySchema, columns: [ColumnSpec], compression: Int? = nil) throws {
        self.schema = schema
        group = try file.root.createGroup(schema.name)
        for c in columns {
            let shape = c.width == 1 ? [0] : [0, c.width]
            let chunkRows = max(1, (1 << 18) / c.width)
            let chunk = c.width == 1 ? [chunkRows] : [chunkRows, c.width]
            let ds: H5Dataset
            switch c.storage {
            case .int64:
                ds = try group.createDataset(
                    c.name, of: Int64.self, shape: shape, extendable: true, chunk: chunk, compression: compression)
            case .int32:
                ds = try group.createDataset(
                    c.name, of: Int32.self, shape: shape, extendable: true, chunk: chunk, compression: compression)
            case .uint8:
                ds = try group.createDataset(
                    c.name, of: UInt8.self, shape: shape, extendable: true, chunk: chunk, compression: compression)
            case .float32:
                ds = try group.createDataset(
                    c.name, of: Float.self, shape: shape, extendable: true, chunk: chunk, compression: compression)
            }
            datasets[c.name] = ds
        }
    }

    /// Appends the rows of `table` (which must have this writer's columns).
    public func append(_ table: Table) throws {
        if table.count == 0 { return }
        for (name, ds) in datasets {
            if let v = table.int64[name] {
                try ds.append(v)
            } else if let v = table.int32[name] {
                try ds.append(v)
            } else if let v = table.uint8[name] {
                try ds.append(v)
            } else if let v = table.float32[name] {
                try ds.append(v)
            } else {
                throw ArtifactError(
                    file: group.file.path, object: "\(group.path)/\(name)", message: "table lacks column \(name)")
            }
        }
        rows += table.count
    }

    /// Writes the `rows` attribute (call when done).
    public func finish() throws {
        try group.setAttribute("rows", Int64(rows))
    }
}

extension Table {
    /// Reads group `/<schema.name>` of `file` (all rows, or `range`). Optional columns are read
    /// when present; a missing required column or a wrong type/width is an error naming the
    /// dataset. The pin embedding width is taken from the file.
    public static func read(file: H5File, entity: String, rows range: Range<Int>? = nil) throws -> Table {
        let group = try file.root.group(entity)
        var dimension = 0
        if entity == "pins" {
            let ds = try group.dataset("embedding")
            dimension = ds.shape.count == 2 ? ds.shape[1] : 1
        }
        guard let schema = EntitySchema.named(entity, dimension: dimension) else {
            throw ArtifactError(file: file.path, object: "/\(entity)", message: "unknown entity")
        }
        let present = Set(try group.names())
        var table = Table(schema: schema, including: present)
        var n: Int? = nil
        for c in table.presentColumns {
            guard present.contains(c.name) else {
                throw ArtifactError(file: file.path, object: "/\(entity)/\(c.name)", message: "missing column")
            }
            let ds = try group.dataset(c.name)
            let rowsHere = ds.rowCount
            if let n, n != rowsHere {
                throw ArtifactError(
                    file: file.path, object: ds.path, message: "\(rowsHere) rows, other columns have \(n)")
            }
            n = rowsHere
            if ds.rowWidth != c.width {
                throw ArtifactError(
                    file: file.path, object: ds.path, message: "width \(ds.rowWidth), expected \(c.width)")
            }
            let r = range ?? 0..<rowsHere
            switch c.storage {
            case .int64: table.int64[c.name] = try ds.readRows(r, as: Int64.self)
            case .int32: table.int32[c.name] = try ds.readRows(r, as: Int32.self)
            case .uint8: table.uint8[c.name] = try ds.readRows(r, as: UInt8.self)
            case .float32: table.float32[c.name] = try ds.readRows(r, as: Float.self)
            }
        }
        table.setCount(range?.count ?? n ?? 0)
        return table
    }

    /// Writes the whole table into a new group of `file`.
    public func write(file: H5File, compression: Int? = nil) throws {
        let w = try TableWriter(file: file, schema: schema, columns: presentColumns, compression: compression)
        try w.append(self)
        try w.finish()
    }
}

/// Column-oriented rows of one entity: one flat array per column (`count * width` values,
/// row-major), keyed by column name and grouped by storage type.
///
/// The same struct serves the generator, the CSV ingest, the adapters and the readers, so that
/// routing (`routed`), ordering (`gathered`) and the content digest are written once.
public struct Table: Sendable {
    /// The entity's schema.
    public var schema: EntitySchema
    /// Number of rows.
    public internal(set) var count: Int
    /// `int64` columns by name, each `count × width` values row-major. Names starting with `_`
    /// are hidden bookkeeping columns (e.g. `_row`, the source line at ingest), never written.
    public var int64: [String: [Int64]] = [:]
    /// `int32` columns by name (`count × width` values).
    public var int32: [String: [Int32]] = [:]
    /// `uint8` columns by name (enum codes).
    public var uint8: [String: [UInt8]] = [:]
    /// `float32` columns by name (`count × width` values; NaN = not recorded).
    public var float32: [String: [Float]] = [:]

    /// An empty table with every required column (and the optional ones in `including`).
    public init(schema: EntitySchema, including optional: Set<String> = []) {
        self.schema = schema
        count = 0
        for c in schema.columns where !c.optional || optional.contains(c.name) {
            switch c.storage {
            case .int64: int64[c.name] = []
            case .int32: int32[c.name] = []
            case .uint8: uint8[c.name] = []
            case .float32: float32[c.name] = []
            }
        }
    }

    /// Names of the columns present, in schema order.
    public var presentColumns: [ColumnSpec] {
        schema.columns.filter { has($0.name) }
    }

    /// True when column `name` is present.
    public func has(_ name: String) -> Bool {
        int64[name] != nil || int32[name] != nil || uint8[name] != nil || float32[name] != nil
    }

    /// Sets the row count after columns were appended to directly; checks every column's length.
    public mutating func setCount(_ n: Int) {
        for c in presentColumns {
            let len: Int
            switch c.storage {
            case .int64: len = int64[c.name]!.count
            case .int32: len = int32[c.name]!.count
            case .uint8: len = uint8[c.name]!.count
            case .float32: len = float32[c.name]!.count
            }
            precondition(
                len == n * c.width, "column \(schema.name).\(c.name) has \(len) values, expected \(n) × \(c.width)")
        }
        count = n
    }

    /// Reserves room for `n` more rows in every column.
    public mutating func reserve(_ n: Int) {
        for c in presentColumns {
            switch c.storage {
            case .int64: int64[c.name]!.reserveCapacity(int64[c.name]!.count + n * c.width)
            case .int32: int32[c.name]!.reserveCapacity(int32[c.name]!.count + n * c.width)
            case .uint8: uint8[c.name]!.reserveCapacity(uint8[c.name]!.count + n * c.width)
            case .float32: float32[c.name]!.reserveCapacity(float32[c.name]!.count + n * c.width)
            }
        }
    }

    /// Appends all rows of `other` (same columns).
    public mutating func append(_ other: Table) {
        for c in presentColumns {
            switch c.storage {
            case .int64: int64[c.name]!.append(contentsOf: other.int64[c.name]!)
            case .int32: int32[c.name]!.append(contentsOf: other.int32[c.name]!)
            case .uint8: uint8[c.name]!.append(contentsOf: other.uint8[c.name]!)
            case .float32: float32[c.name]!.append(contentsOf: other.float32[c.name]!)
            }
        }
        for (k, v) in other.int64 where k.hasPrefix("_") { int64[k, default: []].append(contentsOf: v) }
        count += other.count
    }

    /// Removes every row, keeping the columns.
    public mutating func removeAll(keepingCapacity: Bool = true) {
        for k in int64.keys { int64[k]!.removeAll(keepingCapacity: keepingCapacity) }
        for k in int32.keys { int32[k]!.removeAll(keepingCapacity: keepingCapacity) }
        for k in uint8.keys { uint8[k]!.removeAll(keepingCapacity: keepingCapacity) }
        for k in float32.keys { float32[k]!.removeAll(keepingCapacity: keepingCapacity) }
        count = 0
    }

    /// The rows at `rows`, in that order (a permutation, a filter, or both).
    public func gathered(_ rows: [Int]) -> Table {
        var out = self
        func pick<T>(_ v: [T], _ w: Int) -> [T] {
            if w == 1 { return rows.map { v[$0] } }
            var o = [T]()
            o.reserveCapacity(rows.count * w)
            for r in rows { o.append(contentsOf: v[(r * w)..<(r * w + w)]) }
            return o
        }
        for c in presentColumns {
            switch c.storage {
            case .int64: out.int64[c.name] = pick(int64[c.name]!, c.width)
            case .int32: out.int32[c.name] = pick(int32[c.name]!, c.width)
            case .uint8: out.uint8[c.name] = pick(uint8[c.name]!, c.width)
            case .float32: out.float32[c.name] = pick(float32[c.name]!, c.width)
            }
        }
        // Hidden bookkeeping columns (names starting with "_") follow the rows too.
        for (k, v) in int64 where k.hasPrefix("_") { out.int64[k] = pick(v, 1) }
        out.count = rows.count
        return out
    }

    /// Reorders (or filters) the rows in place to `rows`, one column at a time, so that peak
    /// memory is the table plus one column rather than two tables.
    public mutating func permute(_ rows: [Int]) {
        func pick<T>(_ v: [T], _ w: Int) -> [T] {
            if w == 1 { return rows.map { v[$0] } }
            var o = [T]()
            o.reserveCapacity(rows.count * w)
            for r in rows { o.append(contentsOf: v[(r * w)..<(r * w + w)]) }
            return o
        }
        for c in presentColumns {
            switch c.storage {
            case .int64: let v = int64.removeValue(forKey: c.name)!; int64[c.name] = pick(v, c.width)
            case .int32: let v = int32.removeValue(forKey: c.name)!; int32[c.name] = pick(v, c.width)
            case .uint8: let v = uint8.removeValue(forKey: c.name)!; uint8[c.name] = pick(v, c.width)
            case .float32: let v = float32.removeValue(forKey: c.name)!; float32[c.name] = pick(v, c.width)
            }
        }
        for k in int64.keys.filter({ $0.hasPrefix("_") }) {
            let v = int64.removeValue(forKey: k)!; int64[k] = pick(v, 1)
        }
        count = rows.count
    }

    /// Column `name` as `Int64`s (throws a precondition failure when absent).
    public func i64(_ name: String) -> [Int64] { int64[name]! }
}

// MARK: - Content digest

extension Table {
    /// An order-independent 64-bit digest of the rows' content: the wrapping sum over rows of a
    /// hash of every present column (by value bits) and `ordinal[row]`, so a table split over any
    /// number of shards sums to the same digest. `ordinal` (e.g. a row's position within its
    /// user's time-ordered sequence) makes order part of the content where order matters.
    public func digest(ordinal: [Int64]? = nil) -> UInt64 {
        let cols = presentColumns
        var sum: UInt64 = 0
        for r in 0..<count {
            var h: UInt64 = 0x1234_5678_9ABC_DEF0
            @inline(__always) func mix(_ x: UInt64) { h = Sharding.hash(Int64(bitPattern: h ^ x)) }
            for c in cols {
                switch c.storage {
                case .int64:
                    let v = int64[c.name]!; for j in 0..<c.width { mix(UInt64(bitPattern: v[r * c.width + j])) }
                case .int32:
                    let v = int32[c.name]!; for j in 0..<c.width { mix(UInt64(UInt32(bitPattern: v[r * c.width + j]))) }
                case .uint8: let v = uint8[c.name]!; for j in 0..<c.width { mix(UInt64(v[r * c.width + j])) }
                case .float32:
                    let v = float32[c.name]!
                    for j in 0..<c.width {
                        let f = v[r * c.width + j]
                        mix(f.isNaN ? 0x7FC0_0000 : UInt64(f.bitPattern))
                    }
                }
            }
            if let ordinal { mix(UInt64(bitPattern: ordinal[r]) &+ 0xABCD) }
            sum &+= h
        }
        return sum
    }

    /// For rows grouped by `key` (each key's rows contiguous), the position of each row within its
    /// group: 0, 1, 2, … restarting at every new key.
    public func ordinals(groupedBy key: String) -> [Int64] {
        let k = int64[key]!
        var out = [Int64](repeating: 0, count: count)
        for i in 1..<max(1, count) where k[i] == k[i - 1] { out[i] = out[i - 1] + 1 }
        return out
    }
}

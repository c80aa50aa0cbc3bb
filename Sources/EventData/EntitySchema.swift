/// How one column is stored in HDF5 and parsed from CSV.
public struct ColumnSpec: Sendable, Equatable {
    /// Storage type of the HDF5 dataset.
    public enum Storage: Sendable, Equatable { case int64, int32, uint8, float32 }

    /// How the CSV field is parsed and validated.
    public enum Kind: Sendable, Equatable {
        /// A non-negative integer id (`int64`).
        case id
        /// Milliseconds since the Unix epoch, 0 … 4102444800000 (year 2100) (`int64`).
        case timestamp
        /// An integer in `range` (`int32`).
        case integer(ClosedRange<Int32>)
        /// One of `names` (case-sensitive), stored as its index (`uint8`). `aliases` map extra
        /// spellings to an index.
        case enumeration(names: [String], aliases: [String: UInt8])
        /// Two upper-case ASCII letters (ISO 3166 alpha-2), packed into an `int32`.
        case country
        /// A probability in [0, 1]; an empty field means "not recorded" and is stored as NaN (`float32`).
        case probability
        /// `width` finite floats separated by spaces (`float32`, shape `(n, width)`).
        case vector
        /// Up to `width` non-negative integers separated by `;`, padded with −1 (`int32`, `(n, width)`).
        case intList
    }

    /// Column name: the CSV header name and the HDF5 dataset name.
    public let name: String
    public let storage: Storage
    public let kind: Kind
    /// Values per row (1 except for vectors and lists).
    public let width: Int
    /// Optional columns may be absent from a file (and from a table).
    public let optional: Bool

    public init(_ name: String, _ storage: Storage, _ kind: Kind, width: Int = 1, optional: Bool = false) {
        self.name = name
        self.storage = storage
        self.kind = kind
        self.width = width
        self.optional = optional
    }
}

/// The entities of the data model and their columns (see `the README, section Data`).
///
/// Every entity is stored as one HDF5 group `/<entity>` per shard file, one dataset per column
/// (`(n,)` or `(n, width)`), all with the same first dimension.
public struct EntitySchema: Sendable, Equatable {
    /// The entity name: `events`, `pins`, `boards`, `saves`, `users`.
    public let name: String
    /// The column whose owner rank holds a row (`owner(value) = hash(value) mod ranks`).
    public let shardKey: String
    /// A unique id column (duplicates are dropped at ingest), if any.
    public let primaryKey: String?
    /// Columns in CSV order.
    public let columns: [ColumnSpec]
    /// Foreign keys: (column, referenced entity). Checked at ingest when that entity is imported too.
    public let foreignKeys: [(column: String, entity: String)]

    public static func == (a: EntitySchema, b: EntitySchema) -> Bool {
        a.name == b.name && a.columns == b.columns
    }

    /// The column named `name`.
    public func column(_ name: String) -> ColumnSpec? { columns.first { $0.name == name } }

    /// Version of this layout, written as the `schema_version` attribute of every shard file.
    public static let version: Int64 = 1

    /// Events: one row per feed event, sharded by `user_id`, in time order within a user.
    public static let events = EntitySchema(
        name: "events", shardKey: "user_id", primaryKey: "event_id",
        columns: [
            ColumnSpec("event_id", .int64, .id),
            ColumnSpec("user_id", .int64, .id),
            ColumnSpec("pin_id", .int64, .id),
            ColumnSpec(
                "event_type", .uint8, .enumeration(names: EventType.names, aliases: ["skip": EventType.hide.rawValue])),
            ColumnSpec("timestamp_ms", .int64, .timestamp),
            ColumnSpec("position", .int32, .integer(0...1_000_000)),
            ColumnSpec("surface", .uint8, .enumeration(names: Surface.names, aliases: [:])),
            ColumnSpec("session_id", .int64, .id),
            // The generator's true probabilities, on impression rows (NaN elsewhere).
            ColumnSpec("p_closeup", .float32, .probability, optional: true),
            ColumnSpec("p_click", .float32, .probability, optional: true),
            ColumnSpec("p_save", .float32, .probability, optional: true),
            ColumnSpec("p_hide", .float32, .probability, optional: true),
        ],
        foreignKeys: [("user_id", "users"), ("pin_id", "pins")])

    /// Pins, sharded by `pin_id`, sorted by `pin_id`. `embedding` is `(n, d)`; `tags` `(n, 8)`.
    public static func pins(dimension d: Int) -> EntitySchema {
        EntitySchema(
            name: "pins", shardKey: "pin_id", primaryKey: "pin_id",
            columns: [
                ColumnSpec("pin_id", .int64, .id),
                ColumnSpec("category", .int32, .integer(0...Int32.max)),
                ColumnSpec("created_at_ms", .int64, .timestamp),
                ColumnSpec("creator_id", .int64, .id),
                ColumnSpec("embedding", .float32, .vector, width: d),
                ColumnSpec("tags", .int32, .intList, width: 8, optional: true),
            ],
            foreignKeys: [("creator_id", "users")])
    }

    /// Boards, sharded by `board_id`. `categories` is `(n, 4)`, −1 padded.
    public static let boards = EntitySchema(
        name: "boards", shardKey: "board_id", primaryKey: "board_id",
        columns: [
            ColumnSpec("board_id", .int64, .id),
            ColumnSpec("owner_id", .int64, .id),
            ColumnSpec("categories", .int32, .intList, width: 4),
        ],
        foreignKeys: [("owner_id", "users")])

    /// Pin–board saves, sharded by `pin_id`, sorted by (pin, time).
    public static let saves = EntitySchema(
        name: "saves", shardKey: "pin_id", primaryKey: nil,
        columns: [
            ColumnSpec("pin_id", .int64, .id),
            ColumnSpec("board_id", .int64, .id),
            ColumnSpec("user_id", .int64, .id),
            ColumnSpec("saved_at_ms", .int64, .timestamp),
        ],
        foreignKeys: [("pin_id", "pins"), ("board_id", "boards"), ("user_id", "users")])

    /// Users, sharded by `user_id`.
    public static let users = EntitySchema(
        name: "users", shardKey: "user_id", primaryKey: "user_id",
        columns: [
            ColumnSpec("user_id", .int64, .id),
            ColumnSpec("country", .int32, .country),
            ColumnSpec("device", .uint8, .enumeration(names: Device.names, aliases: [:])),
            ColumnSpec("signup_at_ms", .int64, .timestamp),
        ],
        foreignKeys: [])

    /// Entity names in dependency order (referenced entities first).
    public static let entityNames = ["users", "pins", "boards", "saves", "events"]

    /// The schema of `name` (`dimension` is the pin embedding width).
    public static func named(_ name: String, dimension: Int) -> EntitySchema? {
        switch name {
        case "events": events
        case "pins": pins(dimension: dimension)
        case "boards": boards
        case "saves": saves
        case "users": users
        default: nil
        }
    }
}

/// Which rank owns a key: a 64-bit mix of the key modulo the rank count, so that consecutive
/// ids spread evenly and the same key always lands on the same rank for a given rank count.
public enum Sharding {
    /// SplitMix64 finaliser of `key`.
    @inline(__always)
    public static func hash(_ key: Int64) -> UInt64 {
        var z = UInt64(bitPattern: key) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The rank in `0 ..< ranks` that owns `key`.
    @inline(__always)
    public static func owner(_ key: Int64, ranks: Int) -> Int { Int(hash(key) % UInt64(ranks)) }
}

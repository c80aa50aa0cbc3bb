import EventData
import Foundation

/// One user event accepted by `POST /v1/events`, as the write-ahead log stores it and the
/// session state applies it. Times are milliseconds since the Unix epoch.
public struct LoggedEvent: Sendable, Equatable {
    /// The log's sequence number (1, 2, … in acknowledgement order; unique per log directory).
    public var seq: UInt64
    /// Who did what to which pin.
    public var user: Int64
    public var pin: Int64
    public var type: EventType
    /// When it happened (ms since the epoch; the server's clock when the client gave none).
    public var timestampMs: Int64
    /// Slot in the feed (0 = top).
    public var position: Int32
    /// Where it happened (`home` unless the client says).
    public var surface: Surface
    /// The client's session id (0 when not given).
    public var session: Int64
    /// The hash of the client's event id (`clientKey(_:)`; 0: none): a retried event with the
    /// same id for the same user is logged once.
    public var clientKey: UInt64

    public init(
        seq: UInt64 = 0, user: Int64, pin: Int64, type: EventType, timestampMs: Int64, position: Int32 = 0,
        surface: Surface = .home, session: Int64 = 0, clientKey: UInt64 = 0
    ) {
        self.clientKey = clientKey
        self.seq = seq
        self.user = user
        self.pin = pin
        self.type = type
        self.timestampMs = timestampMs
        self.position = position
        self.surface = surface
        self.session = session
    }

    /// The key of a client event id (FNV-1a, 64 bits, never 0).
    public static func clientKey(_ id: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in id.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h == 0 ? 1 : h
    }

    /// Bytes of one record in a log segment: 56 bytes of fields and an 8-byte checksum.
    public static let recordSize = 64
    static let checksumSeed: UInt64 = 0x4D4F_5341_4943_5741  // "MOSAICWA": an all-zero record never checks

    /// Appends the record (little-endian fields, then the checksum of those 56 bytes) to `out`.
    func encode(into out: inout [UInt8]) {
        let start = out.count
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put(seq)
        put(user)
        put(pin)
        put(timestampMs)
        put(session)
        put(position)
        put(type.rawValue)
        put(surface.rawValue)
        put(UInt16(0))
        put(clientKey)
        let sum = out[start..<out.count].withUnsafeBytes { Self.checksum($0) }
        put(sum)
    }

    /// Decodes the record at the start of `bytes` (at least `recordSize` long); nil when its
    /// checksum or a field does not check (a torn or corrupted record).
    static func decode(_ bytes: UnsafeRawBufferPointer) -> LoggedEvent? {
        guard bytes.count >= recordSize else { return nil }
        func get<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        guard get(56, UInt64.self) == checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<56])),
            let type = EventType(rawValue: get(44, UInt8.self)), let surface = Surface(rawValue: get(45, UInt8.self))
        else { return nil }
        return LoggedEvent(
            seq: get(0, UInt64.self), user: get(8, Int64.self), pin: get(16, Int64.self), type: type,
            timestampMs: get(24, Int64.self), position: get(40, Int32.self), surface: surface,
            session: get(32, Int64.self), clientKey: get(48, UInt64.self))
    }

    /// A multiply–xorshift hash of `bytes` (whole 8-byte words), seeded so zeros do not check.
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h = checksumSeed
        var i = 0
        while i + 8 <= bytes.count {
            h = (h ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 29
            i += 8
        }
        return h ^ (h >> 32)
    }

    /// The `event_id` of the rotated CSV: bit 62 set (apart from the ids of generated and
    /// ingested datasets), the shard in bits 40–55, the sequence number in bits 0–39.
    public static func eventID(seq: UInt64, shard: Int) -> Int64 {
        Int64(bitPattern: (1 << 62) | (UInt64(shard & 0xFFFF) << 40) | (seq & 0xFF_FFFF_FFFF))
    }

    /// The header of a rotated events file (the `mosaic ingest` events columns).
    public static let csvHeader = "event_id,user_id,pin_id,event_type,timestamp_ms,position,surface,session_id"

    /// The header of a rotated file's client keys (`events-…keys`, beside its events file).
    public static let keysHeader = "seq,user_id,client_key"

    /// The event's line of a keys file (with its newline).
    func keysLine() -> String { "\(seq),\(user),\(clientKey)\n" }

    /// The event as a line of a rotated events file (with its newline).
    public func csvLine(shard: Int) -> String {
        "\(Self.eventID(seq: seq, shard: shard)),\(user),\(pin),\(type.name),\(timestampMs),\(position),"
            + "\(surface.name),\(session)\n"
    }

    /// Parses a line of a rotated events file written by `csvLine`; nil when it is not one.
    public static func parse(csvLine line: Substring) -> LoggedEvent? {
        let f = line.split(separator: ",", omittingEmptySubsequences: false)
        guard f.count == 8, let id = Int64(f[0]), let user = Int64(f[1]), let pin = Int64(f[2]),
            let type = EventType.allCases.first(where: { $0.name == f[3] }), let ts = Int64(f[4]),
            let position = Int32(f[5]), let surface = Surface.allCases.first(where: { $0.name == f[6] }),
            let session = Int64(f[7])
        else { return nil }
        return LoggedEvent(
            seq: UInt64(bitPattern: id) & 0xFF_FFFF_FFFF, user: user, pin: pin, type: type, timestampMs: ts,
            position: position, surface: surface, session: session)
    }
}

/// The kind of a feed event. Stored as `uint8` codes in HDF5 (`event_type`), written by name in CSV.
public enum EventType: UInt8, CaseIterable, Sendable {
    /// The pin was shown in the feed at `position`.
    case impression = 0
    /// The user opened the pin (close-up view).
    case closeup = 1
    /// The user clicked through to the pin's link.
    case click = 2
    /// The user saved the pin to one of their boards.
    case save = 3
    /// The user hid the pin (or skipped it explicitly).
    case hide = 4

    /// The CSV spelling (`impression`, `closeup`, `click`, `save`, `hide`).
    public var name: String {
        switch self {
        case .impression: "impression"
        case .closeup: "closeup"
        case .click: "click"
        case .save: "save"
        case .hide: "hide"
        }
    }

    /// Accepted CSV spellings in code order; `skip` is accepted as an alias of `hide`.
    public static let names = EventType.allCases.map(\.name)
}

/// Where an event happened. Stored as `uint8` codes (`surface`).
public enum Surface: UInt8, CaseIterable, Sendable {
    case home = 0, related = 1, search = 2, board = 3

    /// The CSV spelling.
    public var name: String {
        switch self {
        case .home: "home"
        case .related: "related"
        case .search: "search"
        case .board: "board"
        }
    }

    public static let names = Surface.allCases.map(\.name)
}

/// A user's main device. Stored as `uint8` codes (`device`).
public enum Device: UInt8, CaseIterable, Sendable {
    case ios = 0, android = 1, web = 2, other = 3

    public var name: String {
        switch self {
        case .ios: "ios"
        case .android: "android"
        case .web: "web"
        case .other: "other"
        }
    }

    public static let names = Device.allCases.map(\.name)
}

/// ISO 3166 alpha-2 country codes packed in an `Int32` (`c0 << 8 | c1`, ASCII upper case), the
/// storage of the users' `country` column.
public enum CountryCode {
    /// Packs "US" → 0x5553. Returns nil unless `code` is two ASCII letters A–Z.
    public static func pack(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32? {
        guard bytes.count == 2, (65...90).contains(bytes[0]), (65...90).contains(bytes[1]) else { return nil }
        return Int32(bytes[0]) << 8 | Int32(bytes[1])
    }

    /// Packs a Swift string.
    public static func pack(_ code: String) -> Int32? {
        var bytes = Array(code.utf8)
        return bytes.withUnsafeMutableBufferPointer { pack(UnsafeBufferPointer($0)) }
    }

    /// Unpacks 0x5553 → "US".
    public static func unpack(_ value: Int32) -> String {
        String(decoding: [UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)], as: UTF8.self)
    }
}

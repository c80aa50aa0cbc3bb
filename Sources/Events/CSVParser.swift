import Collective
import EventData
import Foundation

/// Why a row was rejected (the `reason` column of the rejects file).
public enum RejectReason: String, Sendable, CaseIterable {
    /// The row has a different number of fields from the header.
    case wrongColumnCount = "wrong_column_count"
    /// The line is not valid UTF-8.
    case invalidUTF8 = "invalid_utf8"
    /// An integer field holds something else.
    case notAnInteger = "not_an_integer"
    /// A float field holds something else.
    case notANumber = "not_a_number"
    /// NaN or ±inf where a finite number is required (embeddings, probabilities).
    case nonFinite = "non_finite"
    /// A number outside its column's range (negative id, timestamp past 2100, p ∉ [0, 1], …).
    case outOfRange = "out_of_range"
    /// A value outside a closed set (event type, surface, device, country code).
    case unknownValue = "unknown_value"
    /// An embedding with a different number of values from the others.
    case wrongDimension = "wrong_dimension"
    /// A list with more values than the column holds.
    case tooManyValues = "too_many_values"
    /// A required field is empty.
    case emptyField = "empty_field"
    /// The row repeats the id of an earlier row (the earliest row in the file is kept).
    case duplicateID = "duplicate_id"
    /// A foreign key names no row of the referenced entity (imported in the same job).
    case unknownReference = "unknown_reference"
}

/// One rejected row: where it is and why.
public struct RejectRecord: Sendable, Equatable {
    /// The input file.
    public var file: String
    /// 1-based line number in the file (the header is line 1).
    public var row: Int64
    /// The offending column ("" for whole-row problems).
    public var field: String
    public var reason: RejectReason
    /// A human-readable detail (the bad value, the expected range, …).
    public var detail: String

    /// One TSV line `file<TAB>row<TAB>field<TAB>reason<TAB>detail` (tabs and newlines in the
    /// detail replaced by spaces).
    public var tsv: String {
        let clean = detail.map { $0 == "\t" || $0 == "\n" || $0 == "\r" ? " " : $0 }
        return "\(file)\t\(row)\t\(field)\t\(reason.rawValue)\t\(String(clean))"
    }
}

/// The rows of one CSV/TSV file that this rank parsed and accepted, with hidden `_row`
/// (1-based global line number), plus what it rejected.
public struct ParsedFile: Sendable {
    public var table: Table
    public var rejects: [RejectRecord]
    /// Data rows (non-blank lines after the header) this rank read.
    public var dataRows: Int
    /// Bytes of the file this rank read.
    public var bytes: Int
}

/// Reads a CSV (`,`) or TSV (tab) file with a header line on every rank at once: rank r parses
/// the lines that start in bytes [r·S/p, (r+1)·S/p) of the file, so each line is read by
/// exactly one rank and memory per rank is one block plus its accepted rows.
///
/// Fields are not quoted (no field contains the delimiter); CRLF line endings are accepted and
/// blank lines skipped. Embeddings are space-separated floats inside one field, lists `;`-separated.
public struct CSVParser {
    public let path: String
    public let schema: EntitySchema
    public let delimiter: UInt8
    /// Display name of the file in rejects (its path as given).
    public var displayName: String { path }
    public static let blockSize = 4 << 20

    public init(path: String, schema: EntitySchema, delimiter: UInt8) {
        self.path = path
        self.schema = schema
        self.delimiter = delimiter
    }

    /// The delimiter for a file name: tab for `.tsv`/`.tab`/`.txt`, comma otherwise.
    public static func delimiter(forPath path: String) -> UInt8 {
        let ext = (path as NSString).pathExtension.lowercased()
        return ext == "tsv" || ext == "tab" || ext == "txt" ? 9 : 44
    }

    /// The header and first data line (for inferring the embedding width), read by every rank.
    /// Throws `empty_file`, `unreadable`.
    public static func firstLines(path: String) throws -> (size: Int, header: [UInt8], second: [UInt8]?) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw IngestError(file: path, row: 0, reason: "unreadable", message: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var st = stat()
        fstat(fd, &st)
        let size = Int(st.st_size)
        if size == 0 {
            throw IngestError(
                file: path, row: 1, reason: "empty_file", message: "the file is empty (a header line is required)")
        }
        var buf = [UInt8](repeating: 0, count: min(size, 1 << 20))
        let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        buf.removeLast(buf.count - max(0, n))
        var lines: [[UInt8]] = []
        var startOfLine = 0
        for (i, b) in buf.enumerated() where b == 10 {
            lines.append(Array(buf[startOfLine..<i]))
            startOfLine = i + 1
            if lines.count == 2 { break }
        }
        if lines.count < 2, startOfLine < buf.count { lines.append(Array(buf[startOfLine...])) }
        func strip(_ l: [UInt8]) -> [UInt8] { l.last == 13 ? Array(l.dropLast()) : l }
        return (size, strip(lines.first ?? []), lines.count > 1 ? strip(lines[1]) : nil)
    }

    /// Maps header names to schema columns. Throws `missing_header`, `unknown_column`,
    /// `missing_column`, `duplicate_column`, `invalid_utf8`.
    public static func headerColumns(_ header: [UInt8], schema: EntitySchema, delimiter: UInt8, path: String) throws
        -> [ColumnSpec]
    {
        guard let text = String(validating: header, as: UTF8.self) else {
            throw IngestError(
                file: path, row: 1, reason: "missing_header",
                message: "the first line is not UTF-8 text, so it is not a header")
        }
        let names = text.split(separator: Character(UnicodeScalar(delimiter)), omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        let known = Set(schema.columns.map(\.name))
        let expected = schema.columns.map { $0.optional ? "[\($0.name)]" : $0.name }.joined(separator: ",")
        if !names.contains(where: known.contains) {
            throw IngestError(
                file: path, row: 1, reason: "missing_header",
                message:
                    "the first line '\(text.prefix(80))' is not a header; a \(schema.name) file starts with the column names \(expected)"
            )
        }
        var seen = Set<String>()
        var specs: [ColumnSpec] = []
        for n in names {
            guard let c = schema.column(n) else {
                throw IngestError(
                    file: path, row: 1, reason: "unknown_column",
                    message: "column '\(n)' is not a \(schema.name) column (\(expected))")
            }
            guard seen.insert(n).inserted else {
                throw IngestError(
                    file: path, row: 1, reason: "duplicate_column", message: "column '\(n)' appears twice")
            }
            specs.append(c)
        }
        let missing = schema.columns.filter { !$0.optional && !seen.contains($0.name) }.map(\.name)
        if !missing.isEmpty {
            throw IngestError(
                file: path, row: 1, reason: "missing_column",
                message: "required column(s) \(missing.joined(separator: ", ")) absent (\(expected))")
        }
        return specs
    }

    /// Collective: parses this rank's byte range. `_row` holds global 1-based line numbers.
    /// `progress(bytesDone, bytesOfRange, rowsSoFar)` is called after every block.
    public func parse(comm: Communicator, progress: (Int, Int, Int) -> Void = { _, _, _ in }) throws -> ParsedFile {
        let (size, header, _) = try Self.firstLines(path: path)
        let specs = try Self.headerColumns(header, schema: schema, delimiter: delimiter, path: path)
        let p = comm.size, r = comm.rank
        let begin = size * r / p, end = size * (r + 1) / p
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw IngestError(file: path, row: 0, reason: "unreadable", message: String(cString: strerror(errno)))
        }
        defer { close(fd) }

        var sink = RowSink(specs: specs, schema: schema, file: displayName)
        var localLines = 0  // lines owned (including header and blank lines)
        var dataRows = 0
        var bytesRead = 0

        // First owned line: the one starting at `begin` if a line starts there, else the next.
        var start = begin
        if begin > 0 {
            var b: UInt8 = 0
            _ = pread(fd, &b, 1, off_t(begin - 1))
            if b != 10 {
                // Skip to the byte after the next newline.
                var probe = [UInt8](repeating: 0, count: 64 << 10)
                var off = begin
                var found = false
                while !found {
                    let n = probe.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(off)) }
                    if n <= 0 { break }
                    if let i = probe[0..<n].firstIndex(of: 10) { start = off + i + 1; found = true } else { off += n }
                }
                if !found { start = size }
            }
        }

        // One raw buffer: the carried partial line followed by the next block, then a 0 sentinel
        // so that number parsing stops at the end of a final line without a newline.
        var capacity = 2 * Self.blockSize
        var raw = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity + 1)
        defer { raw.deallocate() }
        var have = 0  // bytes in raw
        var bufOffset = start  // file offset of raw[0]
        var readOffset = start
        var done = start >= end
        func handleLine(_ base: UnsafePointer<UInt8>, _ s: Int, _ e0: Int, fileOffset: Int) {
            localLines += 1
            if fileOffset == 0 { return }  // the header
            var e = e0
            if e > s, base[e - 1] == 13 { e -= 1 }
            if e == s { return }  // blank line
            dataRows += 1
            sink.add(base, s, e, line: localLines, delimiter: delimiter)
        }
        while !done {
            // Read no further than this range needs (its last line may run past `end`).
            let want = min(Self.blockSize, max(64 << 10, end + 1 - readOffset))
            if have + want > capacity {
                capacity = 2 * (have + want)
                let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity + 1)
                bigger.update(from: raw, count: have)
                raw.deallocate()
                raw = bigger
            }
            let n = pread(fd, raw + have, want, off_t(readOffset))
            if n < 0 {
                throw IngestError(file: path, row: 0, reason: "unreadable", message: String(cString: strerror(errno)))
            }
            have += n
            readOffset += n
            bytesRead += n
            let eof = n == 0 || readOffset >= size
            raw[have] = 0
            var consumed = 0
            var i = 0
            while i < have {
                let lineStart = i
                if bufOffset + lineStart >= end { done = true; break }
                guard let nl = memchr(raw + i, 10, have - i) else {
                    if !eof { break }  // partial line: wait for the next block
                    handleLine(raw, lineStart, have, fileOffset: bufOffset + lineStart)
                    consumed = have
                    break
                }
                let lineEnd = raw.distance(to: nl.assumingMemoryBound(to: UInt8.self))
                handleLine(raw, lineStart, lineEnd, fileOffset: bufOffset + lineStart)
                i = lineEnd + 1
                consumed = i
            }
            if consumed > 0, consumed < have { memmove(raw, raw + consumed, have - consumed) }
            have -= consumed
            bufOffset += consumed
            if eof { done = true }
            progress(min(bufOffset, end) - begin, end - begin, dataRows)
        }
        // Global line numbers: lines owned by lower ranks come first.
        let counts = try comm.allgather([Int64(localLines)])
        let before = counts[0..<r].reduce(0, +)
        var table = sink.takeTable()
        table.int64["_row"] = table.int64["_row"]!.map { $0 + before }
        var rejects = sink.rejects
        for i in rejects.indices { rejects[i].row += before }
        return ParsedFile(table: table, rejects: rejects, dataRows: dataRows, bytes: bytesRead)
    }
}

/// Validates fields and accumulates accepted rows column by column.
///
/// The hot loop works on plain values only: each column's rule is flattened into a `Rule` (no
/// strings or arrays to retain per field), and a row's values go to flat scratch buffers that
/// are committed only when every field is valid.
struct RowSink {
    /// A column's parsing rule with plain payloads.
    enum Rule {
        case id, timestamp, integer(Int64, Int64), enumeration(Int), country, probability, vector(Int), intList(Int)
    }
    let specs: [ColumnSpec]
    let rules: [Rule]
    /// Per enumeration column: accepted spellings as bytes with their codes.
    let spellings: [[(bytes: [UInt8], code: UInt8)]]
    let schema: EntitySchema
    let file: String
    var i64: [[Int64]], i32: [[Int32]], u8: [[UInt8]], f32: [[Float]]
    var rows: [Int64] = []
    var rejects: [RejectRecord] = []
    // Scratch for one row: one Int64 per scalar column, floats/ints of wide columns from `offset`.
    var scalar: [Int64]
    var floats: [Float], ints: [Int32]
    let offset: [Int]
    var fieldStarts: [Int] = [], fieldEnds: [Int] = []

    init(specs: [ColumnSpec], schema: EntitySchema, file: String) {
        self.specs = specs
        self.schema = schema
        self.file = file
        let n = specs.count
        var rules: [Rule] = [], spellings: [[(bytes: [UInt8], code: UInt8)]] = []
        var offset: [Int] = [], width = 0
        for c in specs {
            offset.append(width)
            width += c.width
            switch c.kind {
            case .id: rules.append(.id)
            case .timestamp: rules.append(.timestamp)
            case .integer(let r): rules.append(.integer(Int64(r.lowerBound), Int64(r.upperBound)))
            case .enumeration(let names, let aliases):
                rules.append(.enumeration(spellings.count))
                spellings.append(
                    names.enumerated().map { (Array($0.element.utf8), UInt8($0.offset)) }
                        + aliases.map { (Array($0.key.utf8), $0.value) })
            case .country: rules.append(.country)
            case .probability: rules.append(.probability)
            case .vector: rules.append(.vector(c.width))
            case .intList: rules.append(.intList(c.width))
            }
        }
        self.rules = rules
        self.spellings = spellings
        self.offset = offset
        i64 = Array(repeating: [], count: n); i32 = Array(repeating: [], count: n)
        u8 = Array(repeating: [], count: n); f32 = Array(repeating: [], count: n)
        scalar = Array(repeating: 0, count: n)
        floats = Array(repeating: 0, count: width)
        ints = Array(repeating: 0, count: width)
    }

    mutating func reject(_ line: Int, _ k: Int, _ reason: RejectReason, _ detail: String) {
        rejects.append(
            RejectRecord(
                file: file, row: Int64(line), field: k < 0 ? "" : specs[k].name, reason: reason, detail: detail))
    }

    static func text(_ base: UnsafePointer<UInt8>, _ s: Int, _ e: Int) -> String {
        String(decoding: UnsafeBufferPointer(start: base + s, count: min(e - s, 60)), as: UTF8.self)
    }

    mutating func add(_ base: UnsafePointer<UInt8>, _ s: Int, _ e: Int, line: Int, delimiter: UInt8) {
        if !Self.isValidUTF8(base, s, e) {
            reject(line, -1, .invalidUTF8, "the line holds bytes that are not UTF-8")
            return
        }
        fieldStarts.removeAll(keepingCapacity: true)
        fieldEnds.removeAll(keepingCapacity: true)
        var fs = s
        var i = s
        while i < e {
            guard let d = memchr(base + i, Int32(delimiter), e - i) else { break }
            let at = base.distance(to: d.assumingMemoryBound(to: UInt8.self))
            fieldStarts.append(fs); fieldEnds.append(at)
            fs = at + 1
            i = at + 1
        }
        fieldStarts.append(fs); fieldEnds.append(e)
        guard fieldStarts.count == rules.count else {
            reject(line, -1, .wrongColumnCount, "found \(fieldStarts.count) fields, the header has \(rules.count)")
            return
        }
        for k in 0..<rules.count {
            if let (reason, detail) = parseField(k, base, fieldStarts[k], fieldEnds[k]) {
                reject(line, k, reason, detail)
                return
            }
        }
        for k in 0..<rules.count {
            switch rules[k] {
            case .id, .timestamp: i64[k].append(scalar[k])
            case .integer, .country: i32[k].append(Int32(truncatingIfNeeded: scalar[k]))
            case .enumeration: u8[k].append(UInt8(truncatingIfNeeded: scalar[k]))
            case .probability: f32[k].append(floats[offset[k]])
            case .vector(let w): f32[k].append(contentsOf: floats[offset[k]..<offset[k] + w])
            case .intList(let w): i32[k].append(contentsOf: ints[offset[k]..<offset[k] + w])
            }
        }
        rows.append(Int64(line))
    }

    /// Parses field `k` into scratch; returns a reason on failure.
    mutating func parseField(_ k: Int, _ base: UnsafePointer<UInt8>, _ a: Int, _ b: Int) -> (RejectReason, String)? {
        switch rules[k] {
        case .id, .timestamp:
            if a == b { return (.emptyField, "empty") }
            guard let v = Self.parseInt(base, a, b) else {
                return (.notAnInteger, "'\(Self.text(base, a, b))' is not an integer")
            }
            if case .id = rules[k], v < 0 { return (.outOfRange, "\(v) < 0") }
            if case .timestamp = rules[k], v < 0 || v > 4_102_444_800_000 {
                return (.outOfRange, "\(v) ms is outside 1970…2100")
            }
            scalar[k] = v
        case .integer(let lo, let hi):
            if a == b { return (.emptyField, "empty") }
            guard let v = Self.parseInt(base, a, b) else {
                return (.notAnInteger, "'\(Self.text(base, a, b))' is not an integer")
            }
            guard v >= lo, v <= hi else { return (.outOfRange, "\(v) outside \(lo)…\(hi)") }
            scalar[k] = v
        case .enumeration(let e):
            var found = false
            for (bytes, code) in spellings[e] where bytes.count == b - a {
                if bytes.withUnsafeBufferPointer({ memcmp($0.baseAddress!, base + a, b - a) == 0 }) {
                    scalar[k] = Int64(code)
                    found = true
                    break
                }
            }
            if !found {
                let names = spellings[e].map { String(decoding: $0.bytes, as: UTF8.self) }
                return (.unknownValue, "'\(Self.text(base, a, b))' is not one of \(names.joined(separator: "|"))")
            }
        case .country:
            guard let code = CountryCode.pack(UnsafeBufferPointer(start: base + a, count: b - a)) else {
                return (.unknownValue, "'\(Self.text(base, a, b))' is not a two-letter upper-case country code")
            }
            scalar[k] = Int64(code)
        case .probability:
            if a == b { floats[offset[k]] = .nan; return nil }
            guard let v = Self.parseFloat(base, a, b) else {
                return (.notANumber, "'\(Self.text(base, a, b))' is not a number")
            }
            guard v.isFinite else { return (.nonFinite, "'\(Self.text(base, a, b))' is not finite") }
            guard v >= 0, v <= 1 else { return (.outOfRange, "\(v) is not a probability") }
            floats[offset[k]] = v
        case .vector(let w):
            var i = a, n = 0
            while i < b {
                while i < b, base[i] == 32 { i += 1 }
                if i == b { break }
                var j = i
                while j < b, base[j] != 32 { j += 1 }
                guard let v = Self.parseFloat(base, i, j) else {
                    return (.notANumber, "value \(n): '\(Self.text(base, i, j))' is not a number")
                }
                guard v.isFinite else { return (.nonFinite, "value \(n) is '\(Self.text(base, i, j))'") }
                if n < w { floats[offset[k] + n] = v }
                n += 1
                i = j
            }
            if n != w { return (.wrongDimension, "\(n) values, expected \(w)") }
        case .intList(let w):
            var i = a, n = 0
            while i < b {
                var j = i
                while j < b, base[j] != 59 { j += 1 }
                if j > i {
                    guard let v = Self.parseInt(base, i, j) else {
                        return (.notAnInteger, "'\(Self.text(base, i, j))' is not an integer")
                    }
                    guard v >= 0, v <= Int64(Int32.max) else { return (.outOfRange, "\(v) outside 0…\(Int32.max)") }
                    if n < w { ints[offset[k] + n] = Int32(v) }
                    n += 1
                }
                i = j + 1
            }
            if n > w { return (.tooManyValues, "\(n) values, at most \(w)") }
            for j in n..<w { ints[offset[k] + j] = -1 }
        }
        return nil
    }

    /// Decimal integer with optional sign; nil on any other byte or overflow.
    @inline(__always)
    static func parseInt(_ base: UnsafePointer<UInt8>, _ a: Int, _ b: Int) -> Int64? {
        var i = a
        var negative = false
        if i < b, base[i] == 45 || base[i] == 43 { negative = base[i] == 45; i += 1 }
        if i == b { return nil }
        var v: Int64 = 0
        while i < b {
            let d = Int64(base[i]) - 48
            if d < 0 || d > 9 { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(d)
            if o1 || o2 { return nil }
            v = s
            i += 1
        }
        return negative ? -v : v
    }

    /// A float (C locale `strtof`); nil unless the whole field is consumed. The byte after the
    /// field is a delimiter, newline or the buffer's sentinel 0, so `strtof` stops there.
    @inline(__always)
    static func parseFloat(_ base: UnsafePointer<UInt8>, _ a: Int, _ b: Int) -> Float? {
        if a == b || base[a] == 32 { return nil }
        var end: UnsafeMutablePointer<CChar>? = nil
        let p = UnsafeRawPointer(base + a).assumingMemoryBound(to: CChar.self)
        let v = strtof(p, &end)
        guard let end else { return nil }
        let consumed = UnsafeRawPointer(end) - UnsafeRawPointer(p)
        guard consumed == b - a else { return nil }
        return v
    }

    /// Strict UTF-8 check (no overlongs, no surrogates, ≤ U+10FFFF); ASCII fast path.
    static func isValidUTF8(_ base: UnsafePointer<UInt8>, _ s: Int, _ e: Int) -> Bool {
        var i = s
        while i < e {
            let c = base[i]
            if c < 0x80 { i += 1; continue }
            var need = 0
            var minCode: UInt32 = 0
            var code: UInt32 = 0
            if c & 0xE0 == 0xC0 {
                need = 1; code = UInt32(c & 0x1F); minCode = 0x80
            } else if c & 0xF0 == 0xE0 {
                need = 2; code = UInt32(c & 0x0F); minCode = 0x800
            } else if c & 0xF8 == 0xF0 {
                need = 3; code = UInt32(c & 0x07); minCode = 0x10000
            } else {
                return false
            }
            if i + need >= e { return false }
            for j in 1...need {
                let cc = base[i + j]
                if cc & 0xC0 != 0x80 { return false }
                code = code << 6 | UInt32(cc & 0x3F)
            }
            if code < minCode || code > 0x10FFFF || (0xD800...0xDFFF).contains(code) { return false }
            i += need + 1
        }
        return true
    }

    /// Moves the accepted rows out as a table, copying each column to an exact-size buffer and
    /// releasing the grown one before the next (growth by doubling leaves up to 2× slack).
    mutating func takeTable() -> Table {
        func fit<T>(_ a: inout [T]) -> [T] {
            let out = [T](unsafeUninitializedCapacity: a.count) { buffer, n in
                _ = buffer.initialize(from: a)
                n = a.count
            }
            a = []
            return out
        }
        var t = Table(schema: schema, including: Set(specs.filter(\.optional).map(\.name)))
        for (k, c) in specs.enumerated() {
            switch c.storage {
            case .int64: t.int64[c.name] = fit(&i64[k])
            case .int32: t.int32[c.name] = fit(&i32[k])
            case .uint8: t.uint8[c.name] = fit(&u8[k])
            case .float32: t.float32[c.name] = fit(&f32[k])
            }
        }
        let n = rows.count
        t.int64["_row"] = fit(&rows)
        t.setCount(n)
        return t
    }
}

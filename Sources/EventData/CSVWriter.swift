import Foundation

/// Formats table rows as CSV/TSV lines in the import format (`CSVParser` reads them back to the
/// same values: floats use Swift's shortest round-trip spelling; NaN probabilities become empty
/// fields; lists drop their −1 padding).
public enum CSVWriter {
    /// The header line (with a trailing newline) for the columns present in `table`.
    public static func header(_ table: Table, delimiter: UInt8) -> [UInt8] {
        Array(table.presentColumns.map(\.name).joined(separator: String(UnicodeScalar(delimiter))).utf8) + [10]
    }

    /// Appends rows `range` of `table` to `out`.
    public static func append(_ table: Table, rows range: Range<Int>, delimiter: UInt8, to out: inout [UInt8]) {
        let cols = table.presentColumns
        func put(_ s: String) { out.append(contentsOf: s.utf8) }
        func putInt<T: BinaryInteger>(_ v: T) {
            if v == 0 { out.append(48); return }
            var x = Int64(v)
            if x < 0 { out.append(45); x = -x }
            var digits:
                (
                    UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                    UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
                ) =
                    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            var n = 0
            withUnsafeMutableBytes(of: &digits) { d in
                while x > 0 { d[n] = UInt8(48 + x % 10); x /= 10; n += 1 }
                for i in stride(from: n - 1, through: 0, by: -1) { out.append(d[i]) }
            }
        }
        let i64 = cols.map { table.int64[$0.name] }, i32 = cols.map { table.int32[$0.name] }
        let u8 = cols.map { table.uint8[$0.name] }, f32 = cols.map { table.float32[$0.name] }
        for r in range {
            for (k, c) in cols.enumerated() {
                if k > 0 { out.append(delimiter) }
                switch c.kind {
                case .id, .timestamp: putInt(i64[k]![r])
                case .integer: putInt(i32[k]![r])
                case .enumeration(let names, _): put(names[Int(u8[k]![r])])
                case .country: put(CountryCode.unpack(i32[k]![r]))
                case .probability:
                    let v = f32[k]![r]
                    if !v.isNaN { put(v.description) }
                case .vector:
                    for j in 0..<c.width {
                        if j > 0 { out.append(32) }
                        put(f32[k]![r * c.width + j].description)
                    }
                case .intList:
                    var first = true
                    for j in 0..<c.width {
                        let v = i32[k]![r * c.width + j]
                        if v < 0 { continue }
                        if !first { out.append(59) }
                        putInt(v)
                        first = false
                    }
                }
            }
            out.append(10)
        }
    }
}

import Foundation

/// A digest of an HDF5 file's content — every dataset's path, shape, element type and values —
/// that ignores what HDF5 stores beside them (object times, layout, attributes). Two files with
/// equal digests hold the same arrays, so it compares artifacts that were written at different
/// times (a resumed stage against an uninterrupted one).
public enum H5Digest {
    /// The digest of the file at `path`, as 16 hex digits.
    public static func of(path: String) throws -> String {
        let file = try H5File(path: path, mode: .read)
        var h: UInt64 = 0x6A09_E667_F3BC_C908
        func mix(_ x: UInt64) { h = FileChecksum.mix(h ^ x) }
        func mix(_ s: String) { for b in s.utf8 { mix(UInt64(b)) } }
        func visit(_ group: H5Group, prefix: String) throws {
            for name in try group.names() {
                let path = prefix + "/" + name
                mix(path)
                if let sub = try? group.group(name) {
                    try visit(sub, prefix: path)
                    continue
                }
                let d = try group.dataset(name)
                for n in d.shape { mix(UInt64(n)) }
                let type = d.elementTypeName
                mix(type)
                switch type {
                case Float.h5Name: for v in try d.read(as: Float.self) { mix(UInt64(v.bitPattern)) }
                case Double.h5Name: for v in try d.read(as: Double.self) { mix(v.bitPattern) }
                case Int32.h5Name: for v in try d.read(as: Int32.self) { mix(UInt64(UInt32(bitPattern: v))) }
                case Int64.h5Name: for v in try d.read(as: Int64.self) { mix(UInt64(bitPattern: v)) }
                case UInt8.h5Name: for v in try d.read(as: UInt8.self) { mix(UInt64(v)) }
                default: break  // other types: path, shape and type only
                }
            }
        }
        try visit(file.root, prefix: "")
        return String(format: "%016llx", h)
    }
}

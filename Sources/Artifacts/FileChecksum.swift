import Foundation

/// A fast 64-bit checksum of a file's bytes (a multiply–xorshift hash over 8-byte words, not
/// cryptographic): what a published manifest records to catch a truncated, replaced or
/// corrupted file.
public enum FileChecksum {
    /// The checksum of the file at `path`, as 16 hex digits.
    public static func of(path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ArtifactError(file: path, message: "cannot open to checksum")
        }
        defer { try? handle.close() }
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15
        var total: UInt64 = 0
        while true {
            let chunk = handle.readData(ofLength: 4 << 20)
            if chunk.isEmpty { break }
            total &+= UInt64(chunk.count)
            chunk.withUnsafeBytes { raw in
                let words = raw.count / 8
                for i in 0..<words {
                    h = mix(h ^ raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))
                }
                var tail: UInt64 = 0
                for (j, b) in raw[(words * 8)...].enumerated() { tail |= UInt64(b) << (8 * UInt64(j)) }
                if raw.count % 8 != 0 { h = mix(h ^ tail) }
            }
        }
        h = mix(h ^ total)
        return String(format: "%016llx", h)
    }

    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x &* 0xFF51_AFD7_ED55_8CCD
        z ^= z >> 33
        z = z &* 0xC4CE_B9FE_1A85_EC53
        return z ^ (z >> 29)
    }
}

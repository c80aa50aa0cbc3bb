import Collective
import Foundation
import RankerInference

extension CTRData {
    /// Reads this rank's block of a CTR CSV: the lines starting in bytes
    /// `[b + (size − b)·r/P, b + (size − b)·(r+1)/P)` of the body (b = the header's end), so
    /// each rank holds about 1/P of the rows and memory is proportional to its shard. Row
    /// numbers in errors are the file's (the ranks exchange their line counts). Collective.
    public static func readCSVShard(path: String, fields expected: Int? = nil, comm: Communicator) throws -> CTRData {
        guard let file = FileHandle(forReadingAtPath: path),
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue
        else { throw RankerError("\(path): cannot read the file") }
        defer { try? file.close() }
        func read(_ offset: Int, _ length: Int) throws -> [UInt8] {
            guard length > 0 else { return [] }
            try file.seek(toOffset: UInt64(offset))
            return [UInt8](try file.read(upToCount: length) ?? Data())
        }
        // The header line (read in growing chunks until its newline).
        var head: [UInt8] = []
        var headerEnd = size
        while head.count < size {
            head += try read(head.count, 1 << 16)
            if let nl = head.firstIndex(of: 10) {
                headerEnd = nl
                break
            }
        }
        let header = try parseHeader(head[0..<min(headerEnd, head.count)], path: path, expected: expected)
        let body = min(size, headerEnd + 1)
        let r = comm.rank, p = comm.size
        let lo = body + (size - body) * r / p, hi = body + (size - body) * (r + 1) / p
        // First line starting at or after `offset` (a line starts at `body` or after a newline).
        func lineStart(_ offset: Int) throws -> Int {
            if offset <= body { return body }
            var at = offset - 1
            while at < size {
                let chunk = try read(at, 1 << 16)
                if let nl = chunk.firstIndex(of: 10) { return at + nl + 1 }
                at += chunk.count
            }
            return size
        }
        let start = try lineStart(lo), end = r == p - 1 ? size : try lineStart(hi)
        let bytes = try read(start, end - start)
        // Global line numbers: lines before this block = header + the lower ranks' lines.
        var lines = bytes.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
        if let last = bytes.last, last != 10 { lines += 1 }
        let lineCounts = try comm.allgather([Int64(lines)])
        let firstLine = 2 + Int(lineCounts[0..<r].reduce(0, +))
        var out = try parseRows(bytes[...], firstLine: firstLine, header: header, path: path)
        let counts = try comm.allgather([Int64(out.count)])
        var starts = [0]
        for c in counts { starts.append(starts.last! + Int(c)) }
        out.shardStarts = starts
        out.shardStart = starts[r]
        return out
    }
}

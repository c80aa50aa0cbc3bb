import Foundation
import Layers

/// Labelled ranking examples held in memory: `count` rows of F sparse ids, optional dense and
/// content features, a position bucket and a group (user) id, and one label per task.
public struct CTRData: Sendable {
    public var fields: Int
    /// Raw ids, (count, fields).
    public var ids: [Int64]
    /// Labels, tasks × count.
    public var labels: [[Float]]
    public var denseWidth = 0, contentWidth = 0
    public var dense: [Float] = [], content: [Float] = []
    /// Position bucket per row (−1 = unknown); empty = none.
    public var positions: [Int] = []
    /// Group per row for GAUC (the user); empty = none.
    public var groups: [Int64] = []
    /// Histories for the DIN / SIM slots (indexed by the same example indices); nil = none.
    public var sequences: SequenceSource? = nil
    /// Sharding over ranks (`readCSVShard`): rank r holds the global rows
    /// `shardStarts[r] ..< shardStarts[r + 1]` (contiguous blocks, size + 1 entries); this rank's
    /// are `shardStart ..< shardStart + count`. Empty: every rank holds every row.
    public var shardStarts: [Int] = []
    public var shardStart = 0

    /// Rows held here.
    public var count: Int { ids.count / max(fields, 1) }
    /// Rows of the whole split, over all ranks.
    public var globalCount: Int { shardStarts.last ?? count }
    /// Whether the rows are spread over ranks.
    public var isSharded: Bool { !shardStarts.isEmpty }

    /// The rank holding global row `g` (binary search in `shardStarts`); 0 when not sharded.
    public func owner(ofRow g: Int) -> Int {
        guard isSharded else { return 0 }
        var lo = 0, hi = shardStarts.count - 2
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if shardStarts[mid] <= g { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// The rows `local` (indices into this rank's rows) as a new, unsharded `CTRData` (no
    /// sequences).
    public func rows(_ local: some Collection<Int>) -> CTRData {
        var out = CTRData(fields: fields, ids: [], labels: labels.map { _ in [] })
        out.denseWidth = denseWidth
        out.contentWidth = contentWidth
        for i in local {
            out.ids += ids[i * fields..<(i + 1) * fields]
            for k in labels.indices { out.labels[k].append(labels[k][i]) }
            if denseWidth > 0 { out.dense += dense[i * denseWidth..<(i + 1) * denseWidth] }
            if contentWidth > 0 { out.content += content[i * contentWidth..<(i + 1) * contentWidth] }
            if !positions.isEmpty { out.positions.append(positions[i]) }
            if !groups.isEmpty { out.groups.append(groups[i]) }
        }
        return out
    }

    public init(fields: Int, ids: [Int64], labels: [[Float]]) {
        self.fields = fields
        self.ids = ids
        self.labels = labels
    }

    /// A batch of the rows `indices` (global indices are used for the dropout key: `firstIndex`
    /// is the batch's position in the global epoch order).
    public func batch<T: Real>(
        _ indices: some Collection<Int>, firstIndex: Int, config: RankerConfig, table: EmbeddingTable<T>,
        as: T.Type = T.self
    ) -> RankerBatch<T> {
        var rows: [Int] = []
        rows.reserveCapacity(indices.count * fields)
        var dense: [T] = [], content: [T] = [], pos: [Int] = []
        dense.reserveCapacity(indices.count * denseWidth)
        content.reserveCapacity(indices.count * contentWidth)
        var labs = [[T]](repeating: [], count: labels.count)
        for i in indices {
            for f in 0..<fields {
                let id = ids[i * fields + f]
                rows.append(config.hashIDs ? table.row(forID: id, salt: f) : Int(id))
            }
            for j in (i * denseWidth)..<((i + 1) * denseWidth) { dense.append(T(self.dense[j])) }
            for j in (i * contentWidth)..<((i + 1) * contentWidth) { content.append(T(self.content[j])) }
            if !positions.isEmpty { pos.append(positions[i]) }
            for k in labels.indices { labs[k].append(T(labels[k][i])) }
        }
        var batch = RankerBatch(
            count: indices.count, firstIndex: firstIndex, rows: rows, dense: dense, content: content, positions: pos,
            labels: labs)
        if let sequences, config.usesSequences {
            let salt = config.candidateField
            sequences.fill(
                &batch, indices: indices, config: config, content: self.content, contentWidth: contentWidth,
                row: { config.hashIDs ? table.row(forID: $0, salt: salt) : Int($0) })
        }
        return batch
    }

    /// The first `n` rows (of the whole split when sharded: this rank keeps its part of them).
    public func prefix(_ n: Int) -> CTRData {
        if isSharded {
            var out = prefixLocal(max(0, min(count, n - shardStart)))
            out.shardStarts = shardStarts.map { min($0, n) }
            out.shardStart = min(shardStart, n)
            return out
        }
        return prefixLocal(n)
    }

    func prefixLocal(_ n: Int) -> CTRData {
        let m = min(n, count)
        var out = CTRData(fields: fields, ids: Array(ids[0..<m * fields]), labels: labels.map { Array($0[0..<m]) })
        out.denseWidth = denseWidth
        out.contentWidth = contentWidth
        if denseWidth > 0 { out.dense = Array(dense[0..<m * denseWidth]) }
        if contentWidth > 0 { out.content = Array(content[0..<m * contentWidth]) }
        if !positions.isEmpty { out.positions = Array(positions[0..<m]) }
        if !groups.isEmpty { out.groups = Array(groups[0..<m]) }
        out.sequences = sequences
        return out
    }

    /// Reads a BARS-style CTR CSV (`label,f1,…,fF` with a header; LF or CRLF): ids are the
    /// global one-hot indices, groups the first field (the user). Throws naming file, row
    /// (1-based line) and field on bad input.
    public static func readCSV(path: String, fields expected: Int? = nil) throws -> CTRData {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RankerError("\(path): cannot read the file")
        }
        let bytes = [UInt8](data)
        let headerEnd = (bytes.firstIndex(of: 10) ?? bytes.count)
        let header = try parseHeader(bytes[0..<headerEnd], path: path, expected: expected)
        return try parseRows(bytes[min(bytes.count, headerEnd + 1)...], firstLine: 2, header: header, path: path)
    }

    /// Column names of a header line; throws unless it starts with `label` and has ≥ 1 field.
    package static func parseHeader(_ line: ArraySlice<UInt8>, path: String, expected: Int?) throws -> [String] {
        var text = line
        if text.last == 13 { text = text.dropLast() }
        let header = text.split(separator: 44, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        guard header.first == "label", header.count >= 2 else {
            if line.isEmpty { throw RankerError("\(path): empty file") }
            throw RankerError("\(path): row 1: expected a header starting with 'label'")
        }
        if let expected, expected != header.count - 1 {
            throw RankerError("\(path): row 1: \(header.count - 1) feature columns, expected \(expected)")
        }
        return header
    }

    /// Data lines of a CTR CSV (after the header), the first being file line `firstLine`.
    package static func parseRows(_ bytes: ArraySlice<UInt8>, firstLine: Int, header: [String], path: String) throws
        -> CTRData
    {
        let fields = header.count - 1
        var ids: [Int64] = [], labels: [Float] = [], groups: [Int64] = []
        var start = bytes.startIndex, line = firstLine - 1
        while start < bytes.endIndex {
            var end = bytes[start...].firstIndex(of: 10) ?? bytes.endIndex
            let next = end + 1
            line += 1
            if end > start, bytes[end - 1] == 13 { end -= 1 }
            defer { start = next }
            if end <= start { continue }
            let cols = bytes[start..<end].split(separator: 44, omittingEmptySubsequences: false)
            guard cols.count == fields + 1 else {
                throw RankerError("\(path): row \(line): \(cols.count) columns, expected \(fields + 1)")
            }
            for (c, col) in cols.enumerated() {
                guard let v = Int64(String(decoding: col, as: UTF8.self)), v >= 0 else {
                    throw RankerError(
                        "\(path): row \(line): field '\(header[c])' is '\(String(decoding: col, as: UTF8.self))', expected a non-negative integer"
                    )
                }
                if c == 0 {
                    guard v <= 1 else {
                        throw RankerError("\(path): row \(line): field 'label' is \(v), expected 0 or 1")
                    }
                    labels.append(Float(v))
                } else {
                    ids.append(v)
                    if c == 1 { groups.append(v) }
                }
            }
        }
        var out = CTRData(fields: fields, ids: ids, labels: [labels])
        out.groups = groups
        return out
    }
}

import Foundation
import Learning

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

    public var count: Int { ids.count / max(fields, 1) }

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
        if let sequences, config.shortLength > 0 || config.simK > 0 {
            let salt = config.candidateField
            sequences.fill(
                &batch, indices: indices, config: config, content: self.content, contentWidth: contentWidth,
                row: { config.hashIDs ? table.row(forID: $0, salt: salt) : Int($0) })
        }
        return batch
    }

    /// The first `n` rows.
    public func prefix(_ n: Int) -> CTRData {
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
        var header: [String] = []
        var ids: [Int64] = [], labels: [Float] = [], groups: [Int64] = []
        var start = 0, line = 0, fields = 0
        while start < bytes.count {
            var end = bytes[start...].firstIndex(of: 10) ?? bytes.count
            let next = end + 1
            line += 1
            if end > start, bytes[end - 1] == 13 { end -= 1 }
            defer { start = next }
            if end <= start { continue }
            let cols = bytes[start..<end].split(separator: 44, omittingEmptySubsequences: false)
            if header.isEmpty {
                header = cols.map { String(decoding: $0, as: UTF8.self) }
                guard header.first == "label", header.count >= 2 else {
                    throw RankerError("\(path): row 1: expected a header starting with 'label'")
                }
                fields = header.count - 1
                if let expected, expected != fields {
                    throw RankerError("\(path): row 1: \(fields) feature columns, expected \(expected)")
                }
                continue
            }
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
                    guard v <= 1 else { throw RankerError("\(path): row \(line): field 'label' is \(v), expected 0 or 1") }
                    labels.append(Float(v))
                } else {
                    ids.append(v)
                    if c == 1 { groups.append(v) }
                }
            }
        }
        guard !header.isEmpty else { throw RankerError("\(path): empty file") }
        var out = CTRData(fields: fields, ids: ids, labels: [labels])
        out.groups = groups
        return out
    }
}

import Linalg
import Scalars

/// Gradient rows of an embedding table: `rows[i]`'s gradient is `grads[i*dim ..< (i+1)*dim]`.
/// Rows are unique and ascending once `deduplicated`.
public struct SparseRows<T: Real>: Sendable {
    public var dim: Int
    public var rows: [Int64]
    public var grads: [T]

    public init(dim: Int, rows: [Int64] = [], grads: [T] = []) {
        precondition(
            grads.count == rows.count * dim, "SparseRows: \(grads.count) values for \(rows.count) rows × \(dim)")
        self.dim = dim
        self.rows = rows
        self.grads = grads
    }

    /// Rows sorted ascending with duplicates summed. Duplicates are added in their original
    /// order (so a rank-ordered concatenation sums in rank order, the same on every rank).
    @_specialize(where T == Float)
    public func deduplicated() -> SparseRows {
        if rows.isEmpty { return self }
        if zip(rows, rows.dropFirst()).allSatisfy({ $0 < $1 }) { return self }  // already unique and ascending
        let order: [Int]
        if rows.count < 1 << 23, rows.allSatisfy({ $0 >= 0 && $0 < 1 << 40 }) {
            // Sort (row, position) packed in one Int64: much faster than a closure sort.
            var keys = rows.enumerated().map { $0.element << 23 | Int64($0.offset) }
            keys.sort()
            order = keys.map { Int($0 & ((1 << 23) - 1)) }
        } else {
            order = rows.indices.sorted { rows[$0] != rows[$1] ? rows[$0] < rows[$1] : $0 < $1 }
        }
        var outRows: [Int64] = []
        var out: [T] = []
        outRows.reserveCapacity(rows.count)
        out.reserveCapacity(grads.count)
        grads.withUnsafeBufferPointer { g in
            for i in order {
                let src = g.baseAddress! + i * dim
                if outRows.last == rows[i] {
                    let base = out.count - dim
                    for c in 0..<dim { out[base + c] += src[c] }
                } else {
                    outRows.append(rows[i])
                    out.append(contentsOf: UnsafeBufferPointer(start: src, count: dim))
                }
            }
        }
        return SparseRows(dim: dim, rows: outRows, grads: out)
    }

    /// `deduplicated()` for rows that are `runs.count` runs back to back (run k has `runs[k]`
    /// rows), each already unique and ascending — e.g. what every rank sent to one owner. Merges
    /// the runs in one pass (O(rows · runs) instead of a sort) and adds duplicates in run order,
    /// so the result equals `deduplicated()` bit for bit. Falls back to it when a run is not
    /// ascending or there are many runs.
    @_specialize(where T == Float)
    public func mergingSortedRuns(_ runs: [Int]) -> SparseRows {
        precondition(
            runs.allSatisfy { $0 >= 0 } && runs.reduce(0, +) == rows.count,
            "SparseRows: runs \(runs) do not cover \(rows.count) rows")
        let starts = exclusiveSum(runs)
        var ascending = true
        for (k, start) in starts.enumerated() where runs[k] > 1 {
            for i in start + 1..<start + runs[k] where rows[i - 1] >= rows[i] { ascending = false; break }
        }
        guard ascending, runs.count <= 16 else { return deduplicated() }
        var heads = starts
        let ends = zip(starts, runs).map { $0 + $1 }
        var outRows: [Int64] = []
        var out = [T].uninitialized(grads.count)
        outRows.reserveCapacity(rows.count)
        var used = 0  // rows written to `out`
        rows.withUnsafeBufferPointer { r in
            grads.withUnsafeBufferPointer { g in
                out.withUnsafeMutableBufferPointer { o in
                    while true {
                        var best = -1
                        for k in heads.indices where heads[k] < ends[k] && (best < 0 || r[heads[k]] < r[heads[best]]) {
                            best = k
                        }
                        if best < 0 { break }
                        let i = heads[best]
                        heads[best] += 1
                        let src = g.baseAddress! + i * dim
                        if outRows.last == r[i] {
                            let dst = o.baseAddress! + (used - 1) * dim
                            for c in 0..<dim { dst[c] += src[c] }
                        } else {
                            outRows.append(r[i])
                            (o.baseAddress! + used * dim).initialize(from: src, count: dim)
                            used += 1
                        }
                    }
                }
            }
        }
        out.removeLast(out.count - used * dim)
        return SparseRows(dim: dim, rows: outRows, grads: out)
    }
}

/// An embedding table of `rows` × `dim` values, looked up by row index; for unbounded id spaces
/// ids are hashed into rows (`row(forID:salt:)`, the hashing trick).
///
/// Its values live outside the dense `ParameterStore`: backward returns only the rows a batch
/// touched (`SparseRows`), which the sparse optimizer updates and the trainer exchanges
/// between ranks without densifying the table. Memory: rows·dim scalars (+ optimizer state).
public final class EmbeddingTable<T: Real> {
    public let name: String
    public let rows: Int, dim: Int
    /// rows × dim values, row-major.
    public var values: [T]
    private var lookedUp: [Int] = []
    private var fields = 0

    /// Values start N(0, std²), row r from stream `(seed, 0, r)`, so any row can be regenerated
    /// independently of the others.
    public init(name: String, rows: Int, dim: Int, std: Double = 0.01, seed: UInt64) {
        precondition(rows > 0 && dim > 0, "EmbeddingTable: rows and dim must be positive")
        self.name = name
        self.rows = rows
        self.dim = dim
        var v = [T](repeating: 0, count: rows * dim)
        for r in 0..<rows {
            var rng = RandomStream(seed: seed, rank: 0, index: UInt64(r))
            for c in 0..<dim { v[r * dim + c] = T(rng.normal() * std) }
        }
        values = v
    }

    /// The row of an arbitrary 64-bit `id` in field `salt` (hashing trick; collisions allowed).
    public func row(forID id: Int64, salt: Int = 0) -> Int {
        var z = UInt64(bitPattern: id) &+ UInt64(salt) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Int(z % UInt64(rows))
    }

    /// Looks up `fields` rows per example: `indices` is (B, fields) row indices; returns
    /// (B, fields·dim), the field embeddings concatenated.
    @_specialize(where T == Float)
    public func forward(_ indices: [Int], fields: Int) -> Tensor<T> {
        precondition(
            fields > 0 && indices.count % fields == 0,
            "EmbeddingTable \(name): \(indices.count) indices for \(fields) fields")
        let b = indices.count / fields
        lookedUp = indices
        self.fields = fields
        var out = [T].uninitialized(indices.count * dim)
        out.withUnsafeMutableBufferPointer { o in
            values.withUnsafeBufferPointer { v in
                for (i, r) in indices.enumerated() {
                    precondition(r >= 0 && r < rows, "EmbeddingTable \(name): row \(r) outside 0..<\(rows)")
                    (o.baseAddress! + i * dim).update(from: v.baseAddress! + r * dim, count: dim)
                }
            }
        }
        return Tensor(rows: b, cols: fields * dim, data: out)
    }

    /// The gradient of the last `forward`'s rows from dL/dy (B, fields·dim), de-duplicated.
    @_specialize(where T == Float)
    public func backward(_ dy: Tensor<T>) -> SparseRows<T> {
        precondition(
            dy.count == lookedUp.count * dim, "EmbeddingTable \(name): gradient shape does not match the lookup")
        return SparseRows(dim: dim, rows: lookedUp.map { Int64($0) }, grads: dy.data).deduplicated()
    }
}

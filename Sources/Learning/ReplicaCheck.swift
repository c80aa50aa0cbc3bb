import Collective

/// Raised when the ranks' parameter replicas differ.
public struct ReplicaDivergenceError: Error, CustomStringConvertible, Sendable {
    /// Step at which the check ran.
    public let step: Int
    /// Ranks whose checksum differs from rank 0's.
    public let ranks: [Int]
    /// Every rank's checksum.
    public let checksums: [Double]
    public var description: String {
        "parameters diverged at step \(step): rank(s) \(ranks.map(String.init).joined(separator: ", ")) differ from rank 0 "
            + "(checksums \(ranks.map { "rank \($0): \(checksums[$0])" }.joined(separator: "; ")), rank 0: \(checksums[0]))"
    }
}

/// Checksums of parameter replicas.
public enum ReplicaCheck {
    /// A position-weighted sum of `values`, in Double: sensitive to a changed value and to swapped
    /// positions.
    @_specialize(where T == Float)
    public static func checksum<T: Real>(_ values: UnsafeBufferPointer<T>) -> Double {
        var total = 0.0
        for i in 0..<values.count { total += Double(values[i]) * Double(1 + i % 1021) }
        return total
    }

    /// Throws `ReplicaDivergenceError` naming every rank whose `checksum` differs from rank 0's.
    /// Collective: every rank must call it.
    public static func verify(checksum: Double, step: Int, comm: Communicator) throws {
        let all = try comm.allgather([checksum])
        let bad = all.indices.filter { all[$0] != all[0] && !(all[$0].isNaN && all[0].isNaN) }
        if !bad.isEmpty || all.contains(where: { !$0.isFinite }) {
            throw ReplicaDivergenceError(
                step: step, ranks: bad.isEmpty ? all.indices.filter { !all[$0].isFinite } : bad, checksums: all)
        }
    }
}

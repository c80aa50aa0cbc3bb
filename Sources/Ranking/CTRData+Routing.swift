import Collective
import Foundation

extension CTRData {
    /// Collective: the rows of every rank, sorted by `keys` (one per local row; ties by the
    /// row's position in its rank's list, so keys should be distinct) and dealt in contiguous
    /// key ranges: rank r receives the rows whose key lies in [r·2⁶⁴/size, (r+1)·2⁶⁴/size) and
    /// the result is sharded (`shardStarts`). The global order is the key order, whatever the
    /// rank count, so `RankerTrainer` trains the same model on 1, 2 or 4 ranks. Sequences are not
    /// carried. Memory: this rank's rows, twice during the exchange.
    public func routed(byKey keys: [UInt64], comm: Communicator) throws -> CTRData {
        precondition(keys.count == count, "one key per row")
        precondition(sequences == nil, "routing does not carry sequences")
        let p = comm.size, tasks = labels.count
        let hasPositions = !positions.isEmpty, hasGroups = !groups.isEmpty
        var order = [[Int]](repeating: [], count: p)
        // ⌊key · p / 2⁶⁴⌋: the key's range.
        for (i, k) in keys.enumerated() { order[Int(k.multipliedFullWidth(by: UInt64(p)).high)].append(i) }
        // Integers: key, ids, position, group. Floats: dense, content, labels.
        let wi = 1 + fields + 2, wf = denseWidth + contentWidth + tasks
        var ints: [Int64] = [], floats: [Float] = []
        ints.reserveCapacity(count * wi)
        floats.reserveCapacity(count * wf)
        for i in order.joined() {
            ints.append(Int64(bitPattern: keys[i]))
            ints += ids[i * fields..<(i + 1) * fields]
            ints.append(hasPositions ? Int64(positions[i]) : -1)
            ints.append(hasGroups ? groups[i] : 0)
            floats += dense[i * denseWidth..<(i + 1) * denseWidth]
            floats += content[i * contentWidth..<(i + 1) * contentWidth]
            for t in 0..<tasks { floats.append(labels[t][i]) }
        }
        let ri = try comm.alltoallv(ints, sendCounts: order.map { $0.count * wi })
        let rf = try comm.alltoallv(floats, sendCounts: order.map { $0.count * wf })
        let m = ri.values.count / wi
        let sorted = (0..<m).sorted {
            UInt64(bitPattern: ri.values[$0 * wi]) < UInt64(bitPattern: ri.values[$1 * wi])
        }
        var out = CTRData(fields: fields, ids: [], labels: labels.map { _ in [] })
        out.denseWidth = denseWidth
        out.contentWidth = contentWidth
        out.ids.reserveCapacity(m * fields)
        for i in sorted {
            let a = i * wi, b = i * wf
            out.ids += ri.values[(a + 1)..<(a + 1 + fields)]
            if hasPositions { out.positions.append(Int(ri.values[a + 1 + fields])) }
            if hasGroups { out.groups.append(ri.values[a + 2 + fields]) }
            out.dense += rf.values[b..<(b + denseWidth)]
            out.content += rf.values[(b + denseWidth)..<(b + denseWidth + contentWidth)]
            for t in 0..<tasks { out.labels[t].append(rf.values[b + denseWidth + contentWidth + t]) }
        }
        let counts = try comm.allgather([Int64(m)])
        out.shardStarts = [0]
        for c in counts { out.shardStarts.append(out.shardStarts.last! + Int(c)) }
        out.shardStart = out.shardStarts[comm.rank]
        return out
    }
}

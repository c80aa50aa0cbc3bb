import Collective
import EventData

extension Table {
    /// Collective: sends every row to rank `destination[row]` (one `alltoallv` per column) and
    /// returns the rows this rank received, in (source rank, source order) order. Hidden
    /// bookkeeping columns (`_…`) travel too.
    public func routed(to destination: [Int], comm: Communicator) throws -> Table {
        var copy = self
        return try copy.route(to: destination, comm: comm)
    }

    /// Like `routed`, but consumes this table column by column while sending (each input
    /// column is released once exchanged), so peak memory is about one table plus one column.
    /// Afterwards `self` is empty.
    public mutating func route(to destination: [Int], comm: Communicator) throws -> Table {
        precondition(destination.count == count)
        let p = comm.size
        var counts = [Int](repeating: 0, count: p)
        for d in destination { counts[d] += 1 }
        // Stable counting sort of the rows by destination.
        var start = [Int](repeating: 0, count: p)
        for r in 1..<max(1, p) { start[r] = start[r - 1] + counts[r - 1] }
        var order = [Int](repeating: 0, count: count)
        for (i, d) in destination.enumerated() {
            order[start[d]] = i
            start[d] += 1
        }
        // Column by column: gather the send buffer in destination order, exchange, drop it, so
        // that at most one column is held twice beside the input and the output.
        var out = Table(schema: schema)
        out.int64 = [:]; out.int32 = [:]; out.uint8 = [:]; out.float32 = [:]
        var received = 0
        func exchange<T: MPIScalar>(_ v: [T], _ w: Int) throws -> [T] {
            var send = [T]()
            send.reserveCapacity(v.count)
            if w == 1 {
                for i in order { send.append(v[i]) }
            } else {
                for i in order { send.append(contentsOf: v[(i * w)..<(i * w + w)]) }
            }
            let (values, rc) = try comm.alltoallv(send, sendCounts: counts.map { $0 * w })
            received = rc.reduce(0, +) / w
            return values
        }
        // Every rank walks the same column list (schema order, then hidden names sorted), so the
        // collectives match up.
        let columns = presentColumns
        for c in columns {
            switch c.storage {
            case .int64: out.int64[c.name] = try exchange(int64.removeValue(forKey: c.name)!, c.width)
            case .int32: out.int32[c.name] = try exchange(int32.removeValue(forKey: c.name)!, c.width)
            case .uint8: out.uint8[c.name] = try exchange(uint8.removeValue(forKey: c.name)!, c.width)
            case .float32: out.float32[c.name] = try exchange(float32.removeValue(forKey: c.name)!, c.width)
            }
        }
        for k in int64.keys.filter({ $0.hasPrefix("_") }).sorted() {
            out.int64[k] = try exchange(int64.removeValue(forKey: k)!, 1)
        }
        setCount(0)  // every column was moved out
        out.setCount(columns.isEmpty ? 0 : received)
        return out
    }
}

/// Collective: asks the owner of each key a question and returns its answers aligned with
/// `keys`. Key `i` (with `payload[i]`) goes to rank `Sharding.owner(keys[i])`; there
/// `answer(receivedKeys, receivedPayloads)` returns one `Int64` per received key.
///
/// This is the distributed join behind duplicate detection and foreign-key checks: memory per
/// rank is proportional to the keys it sends and owns, never to the whole key space.
public func askOwners(
    keys: [Int64], payload: [Int64], comm: Communicator,
    answer: ([Int64], [Int64]) -> [Int64]
) throws -> [Int64] {
    precondition(keys.count == payload.count)
    let p = comm.size
    var counts = [Int](repeating: 0, count: p)
    let dest = keys.map { Sharding.owner($0, ranks: p) }
    for d in dest { counts[d] += 1 }
    var start = [Int](repeating: 0, count: p)
    for r in 1..<max(1, p) { start[r] = start[r - 1] + counts[r - 1] }
    var order = [Int](repeating: 0, count: keys.count)
    for (i, d) in dest.enumerated() {
        order[start[d]] = i
        start[d] += 1
    }
    let (rk, rc) = try comm.alltoallv(order.map { keys[$0] }, sendCounts: counts)
    let (rp, _) = try comm.alltoallv(order.map { payload[$0] }, sendCounts: counts)
    let replies = answer(rk, rp)
    precondition(replies.count == rk.count)
    let (back, _) = try comm.alltoallv(replies, sendCounts: rc)
    var out = [Int64](repeating: 0, count: keys.count)
    for (j, i) in order.enumerated() { out[i] = back[j] }
    return out
}

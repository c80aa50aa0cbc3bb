import EventData
import Foundation
import Layers
import Linalg

/// The users' engagement histories and, per example, what the sequence features need; fills a
/// batch's DIN and SIM slots point-in-time (only events strictly before the example's time).
///
/// GSU (SIM's General Search Unit), per example and candidate:
/// - hard search: the user's events in the candidate's category — from a per-user category
///   index (category → the user's event positions, time-ordered) built ONCE per user when the
///   source is built, never per candidate; the last `k` before the example's time, by binary
///   search;
/// - soft search: the top-`k` events before the example's time by inner product of the event
///   pin's content embedding with the candidate's (a `TopKHeap` over the history).
/// Memory: O(events + pins·contentWidth); nothing per example beyond its user, time, candidate.
public final class SequenceSource: @unchecked Sendable {
    /// Per user u: events `offsets[u] ..< offsets[u + 1]`, time-ordered.
    public let offsets: [Int]
    public let pin: [Int64], type: [UInt8], time: [Int64], category: [Int32]
    /// Per user: category → positions (absolute, into the event arrays), ascending.
    public let categoryIndex: [[Int32: [Int]]]
    /// Content embedding of pin p: `pinEmbedding[p·width ..< (p+1)·width]`.
    public let pinEmbedding: [Float], width: Int
    /// Per example: user index, time (ms), candidate category.
    public let exampleUser: [Int], exampleTime: [Int64], exampleCategory: [Int32]

    public init(
        offsets: [Int], pin: [Int64], type: [UInt8], time: [Int64], category: [Int32], pinEmbedding: [Float],
        width: Int, exampleUser: [Int], exampleTime: [Int64], exampleCategory: [Int32]
    ) {
        self.offsets = offsets
        self.pin = pin
        self.type = type
        self.time = time
        self.category = category
        self.pinEmbedding = pinEmbedding
        self.width = width
        self.exampleUser = exampleUser
        self.exampleTime = exampleTime
        self.exampleCategory = exampleCategory
        var index: [[Int32: [Int]]] = []
        index.reserveCapacity(offsets.count - 1)
        for u in 0..<(offsets.count - 1) {
            var m: [Int32: [Int]] = [:]
            for j in offsets[u]..<offsets[u + 1] { m[category[j], default: []].append(j) }
            index.append(m)
        }
        categoryIndex = index
    }

    /// Number of the user's events strictly before `t`: they are `offsets[u] ..< end`.
    @inline(__always)
    public func end(user u: Int, before t: Int64) -> Int {
        var lo = offsets[u], hi = offsets[u + 1]
        while lo < hi {
            let mid = (lo + hi) / 2
            if time[mid] < t { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Bucket of the time since an event: ⌊log2(1 + minutes)⌋, capped at `buckets − 1`.
    @inline(__always)
    public static func bucket(sinceMs delta: Int64, buckets: Int) -> Int {
        let minutes = max(0, delta) / 60_000
        var b = 0
        var m = minutes + 1
        while m > 1 { m >>= 1; b += 1 }
        return min(b, buckets - 1)
    }

    /// Event positions (absolute) of the GSU for example `i` with candidate content `query`.
    public func gsu(example i: Int, k: Int, mode: String, query: ArraySlice<Float>) -> [Int] {
        let u = exampleUser[i], t = exampleTime[i]
        let e = end(user: u, before: t)
        if mode == "hard" {
            guard let list = categoryIndex[u][exampleCategory[i]] else { return [] }
            var lo = 0, hi = list.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if list[mid] < e { lo = mid + 1 } else { hi = mid }
            }
            return Array(list[max(0, lo - k)..<lo])
        }
        var heap = TopKHeap(k: k)
        let q = Array(query)
        pinEmbedding.withUnsafeBufferPointer { emb in
            for j in offsets[u]..<e {
                let base = Int(pin[j]) * width
                var dot: Float = 0
                for c in 0..<width { dot += q[c] * emb[base + c] }
                heap.push(id: Int64(j), score: dot)
            }
        }
        // Oldest first, like the short sequence.
        return heap.sorted().map { Int($0.id) }.sorted()
    }

    /// Fills the DIN (last `config.shortLength` events), SIM (GSU) and transformer (last
    /// `config.transformerLength` events) slots of examples `indices`.
    public func fill<T>(
        _ batch: inout RankerBatch<T>, indices: some Collection<Int>, config: RankerConfig, content: [Float],
        contentWidth: Int, row: (Int64) -> Int
    ) {
        var short = SequenceSlots(), long = SequenceSlots(), recent = SequenceSlots()
        var recentContent: [T] = []
        for i in indices {
            let u = exampleUser[i], t = exampleTime[i]
            func encode(_ js: [Int]) -> (rows: [Int], types: [Int], buckets: [Int]) {
                (
                    js.map { row(pin[$0]) }, js.map { Int(type[$0]) },
                    js.map { Self.bucket(sinceMs: t - time[$0], buckets: config.timeBuckets) }
                )
            }
            if config.shortLength > 0 {
                let e = end(user: u, before: t)
                let s = encode(Array(max(offsets[u], e - config.shortLength)..<e))
                short.append(rows: s.rows, types: s.types, buckets: s.buckets, length: config.shortLength)
            }
            if config.transformerLength > 0 {
                let e = end(user: u, before: t)
                let s = encode(Array(max(offsets[u], e - config.transformerLength)..<e))
                recent.append(rows: s.rows, types: s.types, buckets: s.buckets, length: config.transformerLength)
                if config.transformerContent, width > 0 {
                    var c = [T](repeating: 0, count: config.transformerLength * width)
                    for (slot, j) in (max(offsets[u], e - config.transformerLength)..<e).enumerated() {
                        let base = Int(pin[j]) * width
                        for x in 0..<width { c[slot * width + x] = T(Double(pinEmbedding[base + x])) }
                    }
                    recentContent += c
                }
            }
            if config.simK > 0 {
                let q = content[i * contentWidth..<(i + 1) * contentWidth]
                let s = encode(gsu(example: i, k: config.simK, mode: config.simSearch, query: q))
                long.append(rows: s.rows, types: s.types, buckets: s.buckets, length: config.simK)
            }
        }
        batch.short = short
        batch.long = long
        batch.recent = recent
        batch.recentContent = recentContent
        if config.architecture == .logistic, config.shortLength > 0, width > 0 {
            batch.historyContent = meanHistoryContent(indices: indices, length: config.shortLength)
        }
    }

    /// Per example of `indices`: the mean content embedding of the user's last `length` events
    /// before the example's time, hides excluded (negative feedback); zeros when none. (count, width).
    public func meanHistoryContent<T: Real>(indices: some Collection<Int>, length: Int) -> [T] {
        var out = [T](repeating: 0, count: indices.count * width)
        var sum = [Float](repeating: 0, count: width)
        for (b, i) in indices.enumerated() {
            let u = exampleUser[i]
            let e = end(user: u, before: exampleTime[i])
            var n = 0
            for c in 0..<width { sum[c] = 0 }
            for j in max(offsets[u], e - length)..<e where type[j] != EventType.hide.rawValue {
                let base = Int(pin[j]) * width
                for c in 0..<width { sum[c] += pinEmbedding[base + c] }
                n += 1
            }
            guard n > 0 else { continue }
            for c in 0..<width { out[b * width + c] = T(Double(sum[c] / Float(n))) }
        }
        return out
    }
}

/// A bounded heap that keeps the `k` best (largest score) entries pushed into it.
///
/// Ties are broken by the smaller id, so results are deterministic whatever the push order —
/// which matters when partial top-k lists from several ranks are merged.
/// Cost: O(log k) per push, O(k) memory.
public struct TopKHeap: Sendable {
    /// One kept entry.
    public struct Entry: Equatable, Sendable {
        public var id: Int64
        public var score: Float
        public init(id: Int64, score: Float) {
            self.id = id
            self.score = score
        }
    }

    /// How many entries are kept at most.
    public let k: Int
    // A min-heap under `worse`: the root is the worst kept entry.
    private var heap: [Entry] = []

    public init(k: Int) {
        precondition(k >= 0, "TopKHeap: k must be ≥ 0")
        self.k = k
        heap.reserveCapacity(Swift.min(k, 1 << 16))
    }

    /// True when `a` ranks below `b`: lower score, or equal score and larger id.
    @inline(__always)
    static func worse(_ a: Entry, _ b: Entry) -> Bool {
        a.score < b.score || (a.score == b.score && a.id > b.id)
    }

    /// Number of entries kept so far.
    public var count: Int { heap.count }

    /// The score an entry must beat to enter once the heap is full (`-inf` before).
    public var threshold: Float { heap.count < k ? -.infinity : heap[0].score }

    /// Offers one entry.
    @inline(__always)
    public mutating func push(id: Int64, score: Float) {
        if k == 0 || score.isNaN { return }
        let e = Entry(id: id, score: score)
        if heap.count < k {
            heap.append(e)
            siftUp(heap.count - 1)
        } else if Self.worse(heap[0], e) {
            heap[0] = e
            siftDown(0)
        }
    }

    /// The kept entries, best first.
    public func sorted() -> [Entry] {
        heap.sorted { Self.worse($1, $0) }
    }

    private mutating func siftUp(_ i0: Int) {
        var i = i0
        while i > 0 {
            let parent = (i - 1) / 2
            if Self.worse(heap[i], heap[parent]) {
                heap.swapAt(i, parent)
                i = parent
            } else {
                return
            }
        }
    }

    private mutating func siftDown(_ i0: Int) {
        var i = i0
        let n = heap.count
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var m = i
            if l < n && Self.worse(heap[l], heap[m]) { m = l }
            if r < n && Self.worse(heap[r], heap[m]) { m = r }
            if m == i { return }
            heap.swapAt(i, m)
            i = m
        }
    }
}

/// Top-k selection over score arrays.
public enum TopK {
    /// Indices and scores of the `k` largest of `scores`, best first (ties: smaller index).
    /// NaN scores are never selected. Cost: O(n log k).
    public static func largest(_ scores: UnsafeBufferPointer<Float>, k: Int) -> [TopKHeap.Entry] {
        var heap = TopKHeap(k: Swift.min(k, scores.count))
        for i in 0..<scores.count { heap.push(id: Int64(i), score: scores[i]) }
        return heap.sorted()
    }

    /// Indices and scores of the `k` largest of `scores`, best first.
    public static func largest(_ scores: [Float], k: Int) -> [TopKHeap.Entry] {
        scores.withUnsafeBufferPointer { largest($0, k: k) }
    }

    /// Indices and values of the `k` smallest of `values`, smallest first (e.g. L2 distances).
    public static func smallest(_ values: [Float], k: Int) -> [TopKHeap.Entry] {
        var heap = TopKHeap(k: Swift.min(k, values.count))
        for (i, v) in values.enumerated() { heap.push(id: Int64(i), score: -v) }
        return heap.sorted().map { TopKHeap.Entry(id: $0.id, score: -$0.score) }
    }
}

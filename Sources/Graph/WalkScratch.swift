/// `hash % ranks` without a 64-bit division when `ranks` is a power of two (a mask): a 64-bit
/// `div` costs tens of cycles, and the walker loops take the owner of every node they reach.
/// Equal to `GraphPartition.pinOwner`/`boardOwner` of the hashed id.
struct OwnerOf {
    let ranks: UInt64
    let mask: UInt64
    let powerOfTwo: Bool

    init(ranks: Int) {
        self.ranks = UInt64(ranks)
        powerOfTwo = ranks & (ranks - 1) == 0
        mask = UInt64(ranks - 1)
    }

    @inline(__always)
    func callAsFunction(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: powerOfTwo ? hash & mask : hash % ranks) }
}

/// Per-pass scratch of `RandomWalker.advance`, allocated once per walk job and grown when a
/// pass has more walkers than ever before: the loops never allocate, and no pass pays fresh
/// page faults for its scratch.
final class WalkScratch {
    /// Visits of one pass: (start owner << 32 | position, visited pin).
    private(set) var visitKey: UnsafeMutablePointer<UInt64>
    private(set) var visitPin: UnsafeMutablePointer<Int64>
    /// Departures of one pass: (owner, start, node, meta) per walker.
    private(set) var departures: UnsafeMutablePointer<Int64>
    /// Per walker of a pass: its node's hash.
    private(set) var hash: UnsafeMutablePointer<UInt64>
    /// A line of four empty slots that the prefetch loop touches for walkers whose node lives on
    /// another rank (always cached; no branch on the owner in the loop).
    let dummy: UnsafeMutablePointer<NodeTable.Slot>
    private(set) var capacity = 0

    init() {
        dummy = .allocate(capacity: NodeTable.line)
        dummy.initialize(repeating: NodeTable.Slot(id: .min, span: 0), count: NodeTable.line)
        visitKey = .allocate(capacity: 1)
        visitPin = .allocate(capacity: 1)
        departures = .allocate(capacity: 4)
        hash = .allocate(capacity: 1)
        capacity = 1
    }

    /// Makes room for passes over `n` walkers.
    func reserve(_ n: Int) {
        guard n > capacity else { return }
        let c = max(n, 2 * capacity)
        visitKey.deallocate(); visitPin.deallocate(); departures.deallocate(); hash.deallocate()
        visitKey = .allocate(capacity: c)
        visitPin = .allocate(capacity: c)
        departures = .allocate(capacity: 4 * c)
        hash = .allocate(capacity: c)
        capacity = c
    }

    deinit {
        visitKey.deallocate(); visitPin.deallocate(); departures.deallocate(); hash.deallocate()
        dummy.deallocate()
    }
}

/// Buffers of the walk job's exchanges and visit counting, kept from round to round and batch to
/// batch: the walker and visit records of one batch are tens of MiB, and a fresh array each time
/// would be faulted in afresh every time (page faults were a large part of the counting phase).
final class ExchangeBuffers {
    /// Records to send, grouped by destination rank.
    var send = [Int64]()
    /// Records received (walkers (start, node, meta), or visits (position, pin)): the first
    /// `receivedCount` of `receivedCapacity` (`receive(_:)` sizes it for an exchange).
    private(set) var receivedStorage = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
    private(set) var receivedCount = 0, receivedCapacity = 1

    /// The records of the last exchange.
    var received: UnsafeBufferPointer<Int64> { UnsafeBufferPointer(start: receivedStorage, count: receivedCount) }

    /// Room for `n` received records (`Communicator.alltoallvCounted(_:sendCounts:storage:)`),
    /// grown only when an exchange is larger than every earlier one.
    func receive(_ n: Int) -> UnsafeMutablePointer<Int64> {
        if n > receivedCapacity {
            receivedStorage.deallocate()
            receivedCapacity = max(n, 2 * receivedCapacity)
            receivedStorage = .allocate(capacity: receivedCapacity)
        }
        receivedCount = n
        return receivedStorage
    }

    /// Counting-sort offsets of the visits per start pin of a batch (n + 1).
    var offsets = [Int]()
    /// The batch's visited pins grouped by start pin.
    var flat = [Int64]()

    /// Makes `send` hold `n` elements (zero; the caller overwrites them), keeping its storage.
    func resizeSend(_ n: Int) {
        send.removeAll(keepingCapacity: true)
        send.append(contentsOf: repeatElement(0, count: n))
    }

    deinit { receivedStorage.deallocate() }
}

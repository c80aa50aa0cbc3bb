/// Reusable float scratch buffers for the serving path: slot s keeps the largest buffer asked of
/// it so far, so a scorer that has served its largest request allocates (and page-faults)
/// nothing more. Contents are unspecified when handed out (callers write before reading).
/// Not thread-safe (one per scorer, one scorer per thread).
final class Workspace {
    private var buffers: [UnsafeMutablePointer<Float>] = []
    private var capacities: [Int] = []

    init() {}

    deinit { for b in buffers { b.deallocate() } }

    /// Slot `slot`'s buffer with room for at least `count` floats (plus 16 of padding, so SIMD
    /// loops may read a partial vector past the end).
    func floats(_ slot: Int, _ count: Int) -> UnsafeMutablePointer<Float> {
        while buffers.count <= slot {
            buffers.append(.allocate(capacity: 16))
            capacities.append(0)
        }
        if capacities[slot] < count {
            buffers[slot].deallocate()
            // Grow by half again, so slowly rising request sizes do not reallocate every time.
            let c = max(count, capacities[slot] + capacities[slot] / 2)
            buffers[slot] = .allocate(capacity: c + 16)
            buffers[slot].initialize(repeating: 0, count: c + 16)  // touch the pages once, here
            capacities[slot] = c
        }
        return buffers[slot]
    }

    /// Total floats held (for tests and diagnostics).
    var heldFloats: Int { capacities.reduce(0, +) }
}

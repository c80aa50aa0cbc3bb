#if canImport(Glibc)
    import Glibc
#endif

/// Per-phase time of one rank's walk job (seconds), wall clock and this thread's CPU time; the
/// difference is time spent waiting for other ranks or descheduled (on a shared machine).
public struct WalkPhases: Sendable {
    /// Phase names, in `wall`/`cpu` order.
    public static let names = ["setup", "seed", "step", "pack", "exchange", "unpack", "visits", "count"]
    public enum Phase: Int, Sendable {
        /// Node tables and scratch; creating the batch's walkers; local stepping (`advance`);
        /// packing walkers for the exchange; the alltoallv of walkers and the termination count
        /// (including waiting for the slowest rank); unpacking received walkers; routing visits to
        /// the start pins' owners; counting visits and top-T selection.
        case setup, seed, step, pack, exchange, unpack, visits, count
    }
    public var wall = [Double](repeating: 0, count: names.count)
    public var cpu = [Double](repeating: 0, count: names.count)
    /// Walker exchange rounds (alltoallv of walkers) and bytes of walker records sent by this rank.
    public var rounds = 0, bytesSent = 0

    public init() {}

    /// Wall and thread CPU clocks now (seconds).
    @inline(__always)
    public static func clocks() -> (wall: Double, cpu: Double) {
        var w = timespec(), c = timespec()
        clock_gettime(CLOCK_MONOTONIC, &w)
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c)
        return (Double(w.tv_sec) + Double(w.tv_nsec) * 1e-9, Double(c.tv_sec) + Double(c.tv_nsec) * 1e-9)
    }

    /// Adds the time since `since` to `phase` and returns the clocks now (the next phase's start).
    @discardableResult @inline(__always)
    public mutating func lap(_ phase: Phase, since: (wall: Double, cpu: Double)) -> (wall: Double, cpu: Double) {
        let t = Self.clocks()
        wall[phase.rawValue] += t.wall - since.wall
        cpu[phase.rawValue] += t.cpu - since.cpu
        return t
    }
}

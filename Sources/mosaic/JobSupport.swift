import Collective
import Foundation

/// Peak resident memory of this process in MiB (getrusage `ru_maxrss`, KiB on Linux).
func peakMemoryMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

/// CPU seconds (user + system) used by this process so far.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// Collective: the largest CPU time of any rank since `start` (seconds).
func maxCPUSeconds(_ comm: Communicator, since start: Double) throws -> Double {
    try comm.allreduce(cpuSeconds() - start, op: .max)
}

/// Collective: every rank's peak memory, as "r0,r1,…" MiB (one decimal).
func peakMemoryPerRank(_ comm: Communicator) throws -> String {
    let all = try comm.allgather([peakMemoryMiB()])
    return all.map { String(format: "%.1f", $0) }.joined(separator: ",")
}

/// Rate-limited progress lines with rate and ETA, on rank 0 only.
struct Progress {
    let comm: Communicator
    let label: String
    let start = now()
    var last = now()

    init(comm: Communicator, label: String) {
        self.comm = comm
        self.label = label
    }

    /// Logs at most every 2 s: `done` of `total` units of this rank's work, and a count of items
    /// (e.g. events) with its rate.
    mutating func update(done: Int, total: Int, items: Int, unit: String, force: Bool = false) {
        let t = now()
        guard force || t - last >= 2 else { return }
        last = t
        let elapsed = t - start
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0
        comm.log(String(
            format: "%@: %.1f%% (rank 0: %d/%d), %d %@ on rank 0, %.0f %@/s, elapsed %.1fs, ETA %.0fs",
            label, 100 * fraction, done, total, items, unit, Double(items) / max(elapsed, 1e-9), unit, elapsed, eta))
    }
}

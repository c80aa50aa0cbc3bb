import Foundation
import ProcessKit

extension Communicator {
    /// Collective: the largest CPU time (seconds) any rank used since its `start` reading of
    /// `ProcessStats.cpuSeconds()`.
    public func maxCPUSeconds(since start: Double) throws -> Double {
        try allreduce(ProcessStats.cpuSeconds() - start, op: .max)
    }

    /// Collective: every rank's peak resident memory, as "r0,r1,…" MiB (one decimal).
    public func peakMemoryPerRank() throws -> String {
        let all = try allgather([ProcessStats.peakMemoryMiB()])
        return all.map { String(format: "%.1f", $0) }.joined(separator: ",")
    }
}

/// Rate-limited progress lines of a long job, with rate and ETA, printed on rank 0 only
/// (rank 0's share stands for the job: ranks hold shards of about equal size).
public struct JobProgress {
    let comm: Communicator
    let label: String
    let start = now()
    var last = now()

    /// Progress of the job step `label` (the line's prefix).
    public init(comm: Communicator, label: String) {
        self.comm = comm
        self.label = label
    }

    /// Logs at most every 2 s (or now, with `force`): `done` of `total` units of this rank's
    /// work, and a count of `items` (e.g. events) with its rate in `unit`/s.
    public mutating func update(done: Int, total: Int, items: Int, unit: String, force: Bool = false) {
        let t = now()
        guard force || t - last >= 2 else { return }
        last = t
        let elapsed = t - start
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0
        comm.log(
            String(
                format: "%@: %.1f%% (rank 0: %d/%d), %d %@ on rank 0, %.0f %@/s, elapsed %.1fs, ETA %.0fs",
                label, 100 * fraction, done, total, items, unit, Double(items) / max(elapsed, 1e-9), unit, elapsed,
                eta))
    }
}

import Dispatch
import Foundation

/// Wall-clock seconds on a monotonic clock (for durations only; never a seed).
public func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// This process's resource use, from `getrusage(RUSAGE_SELF)`.
public enum ProcessStats {
    /// CPU seconds (user + system) used by this process so far.
    public static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// CPU seconds of the calling thread (excludes time it was not running: on a shared
    /// machine a wall-clock latency includes preemption by other processes, this does not).
    public static func threadCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// Peak resident memory of this process in MiB (`ru_maxrss`, KiB on Linux).
    public static func peakMemoryMiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}

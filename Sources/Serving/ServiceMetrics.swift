import Foundation
import Synchronization

/// A Prometheus histogram: counts of observations at most each bound, their sum and count.
public struct Histogram: Sendable {
    /// Upper bounds of the buckets (ascending; `+Inf` is implied).
    public let bounds: [Double]
    public private(set) var counts: [Int]
    public private(set) var sum = 0.0, count = 0

    public init(bounds: [Double]) {
        self.bounds = bounds
        counts = [Int](repeating: 0, count: bounds.count)
    }

    /// Records `value` (in the histogram's unit).
    public mutating func observe(_ value: Double) {
        if let i = bounds.firstIndex(where: { value <= $0 }) { counts[i] += 1 }
        sum += value
        count += 1
    }

    /// The Prometheus text lines of `name` with `labels` (`route="x"`, or empty).
    func text(_ name: String, labels: String) -> String {
        let sep = labels.isEmpty ? "" : ","
        var out = "", cumulative = 0
        for (b, c) in zip(bounds, counts) {
            cumulative += c
            out += "\(name)_bucket{\(labels)\(sep)le=\"\(b)\"} \(cumulative)\n"
        }
        out += "\(name)_bucket{\(labels)\(sep)le=\"+Inf\"} \(count)\n"
        let braces = labels.isEmpty ? "" : "{\(labels)}"
        out += "\(name)_sum\(braces) \(String(format: "%.6f", sum))\n\(name)_count\(braces) \(count)\n"
        return out
    }

    /// Latency buckets in seconds, 50 µs … 1 s.
    public static let seconds: [Double] = [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
    ]
}

/// What `/metrics` reports: per-route latency and status counts, feed sizes, events accepted
/// and rejected, WAL fsync latency, the loaded run and its version, reloads and their failures.
public final class ServiceMetrics: Sendable {
    struct State {
        var latency: [String: Histogram] = [:]
        var responses: [String: Int] = [:]  // "route\u{0}code" → count
        var feedSize = Histogram(bounds: [0, 1, 5, 10, 20, 50, 100, 200, 500])
        var fsync = Histogram(bounds: Histogram.seconds)
        var eventsAccepted = 0, eventsRejected = 0, requestsRejected = 0
        var reloads = 0, reloadFailures = 0
        var lastReloadFailure = ""
        var rescore = Histogram(bounds: Histogram.seconds)
        var rescoreCacheHits = 0
    }
    let state = Mutex(State())

    public init() {}

    /// Records a request of `route` answered with `status` in `seconds`.
    public func request(_ route: String, status: Int, seconds: Double) {
        state.withLock {
            $0.latency[route, default: Histogram(bounds: Histogram.seconds)].observe(seconds)
            $0.responses["\(route)\u{0}\(status)", default: 0] += 1
        }
    }

    /// Records the number of pins of a served feed.
    public func feed(size: Int) { state.withLock { $0.feedSize.observe(Double(size)) } }
    /// Records one WAL `fsync` of `seconds`.
    public func fsync(seconds: Double) { state.withLock { $0.fsync.observe(seconds) } }
    /// Records events accepted (durable) or rejected (in a refused request).
    public func events(accepted: Int = 0, rejected: Int = 0) {
        state.withLock {
            $0.eventsAccepted += accepted
            $0.eventsRejected += rejected
        }
    }
    /// Records one online re-scoring of a user's candidates by the ranker (`seconds`), or a
    /// feed served from the session's cached re-scoring (`cached`).
    public func rescore(seconds: Double? = nil, cached: Bool = false) {
        state.withLock {
            if let seconds { $0.rescore.observe(seconds) }
            if cached { $0.rescoreCacheHits += 1 }
        }
    }
    /// Re-scorings so far and feeds served from a cached re-scoring.
    public var rescores: (count: Int, cached: Int) { state.withLock { ($0.rescore.count, $0.rescoreCacheHits) } }

    /// Records a reload: nil for a swap, else the reason it was refused.
    public func reload(failure: String?) {
        state.withLock {
            if let failure {
                $0.reloadFailures += 1
                $0.lastReloadFailure = failure
            } else {
                $0.reloads += 1
            }
        }
    }

    /// Requests answered with `status` so far, over every route.
    public func responses(status: Int) -> Int {
        state.withLock { $0.responses.filter { $0.key.hasSuffix("\u{0}\(status)") }.values.reduce(0, +) }
    }

    /// The Prometheus text exposition, with the loaded run's gauges.
    public func text(run: String, version: Int, sessions: Int, evictions: Int, walFailed: Bool) -> String {
        state.withLock { s in
            func esc(_ v: String) -> String {
                v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                    .replacingOccurrences(of: "\n", with: " ")
            }
            var out = "# TYPE mosaic_request_seconds histogram\n"
            for (r, h) in s.latency.sorted(by: { $0.key < $1.key }) {
                out += h.text("mosaic_request_seconds", labels: "route=\"\(esc(r))\"")
            }
            out += "# TYPE mosaic_responses_total counter\n"
            for (key, n) in s.responses.sorted(by: { $0.key < $1.key }) {
                let parts = key.split(separator: "\u{0}")
                out += "mosaic_responses_total{route=\"\(esc(String(parts[0])))\",code=\"\(parts[1])\"} \(n)\n"
            }
            out += "# TYPE mosaic_feed_size histogram\n" + s.feedSize.text("mosaic_feed_size", labels: "")
            out += "# TYPE mosaic_wal_fsync_seconds histogram\n" + s.fsync.text("mosaic_wal_fsync_seconds", labels: "")
            out += "# TYPE mosaic_rescore_seconds histogram\n" + s.rescore.text("mosaic_rescore_seconds", labels: "")
            out +=
                "# TYPE mosaic_rescore_cache_hits_total counter\nmosaic_rescore_cache_hits_total \(s.rescoreCacheHits)\n"
            out += "# TYPE mosaic_events_accepted_total counter\nmosaic_events_accepted_total \(s.eventsAccepted)\n"
            out += "# TYPE mosaic_events_rejected_total counter\nmosaic_events_rejected_total \(s.eventsRejected)\n"
            out += "# TYPE mosaic_wal_failed gauge\nmosaic_wal_failed \(walFailed ? 1 : 0)\n"
            out += "# TYPE mosaic_run_info gauge\nmosaic_run_info{run=\"\(esc(run))\"} 1\n"
            out += "# TYPE mosaic_run_version gauge\nmosaic_run_version \(version)\n"
            out += "# TYPE mosaic_reloads_total counter\nmosaic_reloads_total \(s.reloads)\n"
            out += "# TYPE mosaic_reload_failures_total counter\nmosaic_reload_failures_total \(s.reloadFailures)\n"
            if !s.lastReloadFailure.isEmpty {
                out += "# TYPE mosaic_reload_last_failure_info gauge\n"
                out += "mosaic_reload_last_failure_info{reason=\"\(esc(s.lastReloadFailure))\"} 1\n"
            }
            out += "# TYPE mosaic_sessions gauge\nmosaic_sessions \(sessions)\n"
            out += "# TYPE mosaic_session_evictions_total counter\nmosaic_session_evictions_total \(evictions)\n"
            return out
        }
    }
}

import Foundation
import Synchronization

/// One loaded feeds run and its version (1 for the run loaded at start, +1 per swap).
public final class LoadedRun: Sendable {
    /// The loaded feeds and pins.
    public let store: FeedStore
    /// 1 for the run loaded at start, +1 per swap.
    public let version: Int

    public init(store: FeedStore, version: Int) {
        self.store = store
        self.version = version
    }
}

/// The run the shard serves, swapped atomically by a reload: a request takes the current run
/// once and finishes on it, so a swap never changes a request half-way; the old run's memory is
/// released when its last request ends.
public final class RunHolder: Sendable {
    let run: Mutex<LoadedRun>
    let reloading = Mutex(false)
    /// Loads (and validates) the run the feeds' `current` pointer names now.
    let loader: (@Sendable () throws -> FeedStore)?
    /// The `current` pointer of the feeds root (for the watcher), when known.
    public let pointer: URL?
    let refused = Mutex<String?>(nil)
    let log: @Sendable (String) -> Void

    /// Holds `store`; `loader` loads a new run on `reload()` (nil: reloads are refused);
    /// `pointer` is the feeds' `current` link the watcher follows; `log` gets one line per event.
    public init(
        store: FeedStore, loader: (@Sendable () throws -> FeedStore)? = nil, pointer: URL? = nil,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        run = Mutex(LoadedRun(store: store, version: 1))
        self.loader = loader
        self.pointer = pointer
        self.log = log
    }

    /// The run to answer a request with.
    public var current: LoadedRun { run.withLock { $0 } }

    /// The outcome of a reload.
    public enum Outcome: Sendable, Equatable {
        /// The new run was loaded, validated and swapped in.
        case swapped(run: String, version: Int)
        /// The pointer names the run already served.
        case unchanged(run: String, version: Int)
        /// The new run was refused (the old one keeps serving), with the reason.
        case refused(String)
        /// Another reload is running.
        case busy
    }

    /// Loads the run `current` names beside the served one, validates it and swaps it in; a
    /// run that fails to load or validate is refused and the served run stays.
    public func reload(metrics: ServiceMetrics? = nil) -> Outcome {
        guard let loader else { return .refused("this shard was started without a loader") }
        let started = reloading.withLock { busy in
            defer { busy = true }
            return !busy
        }
        guard started else { return .busy }
        defer { reloading.withLock { $0 = false } }
        let old = current
        if let target = pointerTarget(), target == old.store.runDirectory {
            return .unchanged(run: old.store.runID, version: old.version)
        }
        let t0 = Date()
        do {
            let store = try loader()
            guard store.runDirectory != old.store.runDirectory else {
                return .unchanged(run: old.store.runID, version: old.version)
            }
            guard !store.feeds.isEmpty || !store.coldStart.isEmpty else {
                throw ReloadRefusal(message: "run \(store.runID) has no feed for this shard and no cold-start lists")
            }
            let new = LoadedRun(store: store, version: old.version + 1)
            run.withLock { $0 = new }
            refused.withLock { $0 = nil }
            metrics?.reload(failure: nil)
            log(
                String(
                    format: "reload: serving run %@ (version %d, %d users) in place of %@ (loaded in %.2f s)",
                    store.runID, new.version, store.feeds.count, old.store.runID, Date().timeIntervalSince(t0)))
            return .swapped(run: store.runID, version: new.version)
        } catch {
            let reason = "\(error)"
            refused.withLock { $0 = pointerTarget() }
            metrics?.reload(failure: reason)
            log("reload refused, still serving run \(old.store.runID) (version \(old.version)): \(reason)")
            return .refused(reason)
        }
    }

    /// `reload` on a thread of its own (loading a run reads files for seconds; the request
    /// threads keep serving meanwhile).
    public func reloadInBackground(metrics: ServiceMetrics? = nil) async -> Outcome {
        await withCheckedContinuation { (c: CheckedContinuation<Outcome, Never>) in
            let thread = Thread { c.resume(returning: self.reload(metrics: metrics)) }
            thread.name = "mosaic-reload"
            thread.start()
        }
    }

    /// The run folder `current` names now (symlinks resolved), or nil.
    public func pointerTarget() -> String? {
        guard let pointer, (try? FileManager.default.destinationOfSymbolicLink(atPath: pointer.path)) != nil else {
            return nil
        }
        return pointer.resolvingSymlinksInPath().path
    }

    /// Polls the `current` pointer every `seconds` and reloads when it names another run (a
    /// refused run is not retried until the pointer moves again). Runs until cancelled.
    public func watch(every seconds: Double, metrics: ServiceMetrics? = nil) async {
        while !Task.isCancelled {
            try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
            guard let target = pointerTarget(), target != current.store.runDirectory,
                target != refused.withLock({ $0 })
            else { continue }
            _ = await reloadInBackground(metrics: metrics)
        }
    }
}

/// Why a reloaded run was refused.
struct ReloadRefusal: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

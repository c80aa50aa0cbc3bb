import ArgumentParser
import Dispatch
import Foundation
import Serving

/// `mosaic-serve`: one serving shard over published feeds. Not an MPI job and linked without
/// MPI: one process per shard, behind a router that sends user u to shard u mod shards.
@main
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mosaic-serve",
        abstract: "Serve precomputed feeds over HTTP with the session's events, logged durably.",
        discussion: """
            Loads the feeds of --feeds (its `current` run) for the users with user mod --shards = \
            --shard, and the content embeddings of their feeds' pins from --world. With the night's \
            ranker (--ranker, default ranker.h5 beside --feeds), a session with saves, closeups or \
            clicks re-scores the feed's pins online. API (JSON; \
            docs/serving.md): GET /v1/feed/{user}?k=20&cursor=… (the feed without the pins saved, \
            hidden or already served in the session, re-ranked by the session's events); POST \
            /v1/events {"events":[{"user":1,"pin":2,"type":"save"},…]} (acknowledged once in the \
            write-ahead log of --wal-dir and fsynced; rotated into <wal-dir>/rotated/*.csv in the \
            `mosaic ingest` events format); GET /v1/session/{user}; POST /v1/feed/{user} (re-rank \
            by the events in the body, stateless); POST /admin/reload and /admin/rotate (bearer \
            token); GET /healthz, /readyz, /metrics (Prometheus). The `current` pointer is watched: \
            a new run loads beside the old one, is validated and swapped in; a run that fails \
            validation is refused and the old one keeps serving. Bad input gets a 4xx JSON error.
            """)

    @Option(help: "Root folder of the published feeds (its `current` run is served and watched).")
    var feeds = "out/feeds"
    @Option(help: "Root folder of the dataset the feeds were built from (pin embeddings).") var world = "out/world"
    @Option(
        help:
            "The night's feed ranker, loaded with each run to re-score a session's feed online (default: ranker.h5 beside --feeds, when it exists)."
    )
    var ranker: String?
    @Option(help: "This shard's index.") var shard = 0
    @Option(help: "Number of serving shards.") var shards = 1
    @Option(help: "Address to listen on (loopback unless told otherwise).") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8080
    @Option(help: "Session re-rank: weight of the similarity to the session's engaged pins.") var alpha: Float = 0.5
    @Option(help: "Session re-rank: weight of the similarity to the session's hidden pins.") var beta: Float = 0.5
    @Option(help: "Folder of the write-ahead event log (and of rotated/*.csv); without it POST /v1/events is 503.")
    var walDir: String?
    @Option(help: "Rotate the event log's segment past this many bytes.") var walSegmentBytes = 64 << 20
    @Option(help: "Rotate a non-empty segment after this many seconds (0: never by age).") var walSegmentAge = 3600.0
    @Option(help: "Sessions kept at most (least recently used evicted).") var maxSessions = 20_000
    @Option(help: "Events kept per session at most (the latest).") var sessionEvents = 256
    @Option(help: "Seconds without a feed request after which the served pins are forgotten (0: never).")
    var sessionTTL = 1_800.0
    @Option(help: "Largest request body in bytes (413 above).") var maxBodyBytes = 1 << 20
    @Option(help: "Most events per request (400 above).") var maxEventsPerRequest = 1_000
    @Option(help: "File holding the bearer token of /admin/* (else env MOSAIC_ADMIN_TOKEN; neither: disabled).")
    var adminTokenFile: String?
    @Option(help: "Seconds between checks of the feeds' `current` pointer (0: no watcher).") var watchInterval = 5.0
    @Flag(help: "Re-score on every feed request instead of reusing a session's last re-scoring (benchmarks).")
    var noScoreCache = false

    func validate() throws {
        guard shards >= 1, (0..<shards).contains(shard) else {
            throw ValidationError("--shard must be in 0..<--shards (got \(shard) of \(shards))")
        }
        guard (1...65535).contains(port) else { throw ValidationError("--port must be in 1…65535") }
        guard maxSessions >= 1, sessionEvents >= 1, maxBodyBytes >= 1, maxEventsPerRequest >= 1 else {
            throw ValidationError("--max-sessions, --session-events, --max-body-bytes, --max-events-per-request ≥ 1")
        }
        guard walSegmentBytes >= LoggedEvent.recordSize, walSegmentAge >= 0, watchInterval >= 0, sessionTTL >= 0 else {
            throw ValidationError(
                "--wal-segment-bytes ≥ \(LoggedEvent.recordSize); --wal-segment-age, --watch-interval, --session-ttl ≥ 0"
            )
        }
    }

    static func say(_ line: String) { FileHandle.standardError.write(Data("mosaic-serve: \(line)\n".utf8)) }

    func adminToken() throws -> String? {
        if let adminTokenFile {
            guard let text = try? String(contentsOfFile: adminTokenFile, encoding: .utf8) else {
                throw ValidationError("cannot read --admin-token-file \(adminTokenFile)")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw ValidationError("--admin-token-file \(adminTokenFile) is empty") }
            return token
        }
        let env = ProcessInfo.processInfo.environment["MOSAIC_ADMIN_TOKEN"] ?? ""
        return env.isEmpty ? nil : env
    }

    func run() throws {
        let t0 = Date()
        let (feedsURL, worldURL, shard, shards) = (
            URL(fileURLWithPath: feeds), URL(fileURLWithPath: world), shard, shards
        )
        let rankerOption = ranker
        let loader: @Sendable () throws -> FeedStore = {
            var store = try FeedStore.load(
                feeds: feedsURL, world: worldURL, shard: shard, shards: shards, verifyChecksums: true)
            // The nightly layout: <run>/ranker.h5 beside <run>/feeds.
            let path =
                rankerOption ?? feedsURL.deletingLastPathComponent().appendingPathComponent("ranker.h5").path
            if rankerOption != nil || FileManager.default.fileExists(atPath: path) {
                store.ranker = try OnlineRanker(path: path)
            }
            return store
        }
        let store = try loader()
        Self.say(
            String(
                format: "run %@ (dataset %@), shard %d of %d: %d users, %d pins loaded in %.1f s",
                store.runID, store.sourceRun, shard, shards, store.feeds.count, store.embeddings.count,
                Date().timeIntervalSince(t0)))
        if let r = store.ranker {
            Self.say(
                "ranker \(r.path): re-scoring sessions' candidates online (\(store.features.count) users, "
                    + "\(store.candidates.values.reduce(0) { $0 + $1.count }) candidates with features)")
        }
        let metrics = ServiceMetrics()
        let sessions = SessionStore(capacity: maxSessions, maxEvents: sessionEvents)
        var log: EventLog?
        if let walDir {
            var options = EventLog.Options(maxSegmentBytes: walSegmentBytes, maxSegmentAge: walSegmentAge, shard: shard)
            options.onSync = { metrics.fsync(seconds: $0) }
            let opened = try EventLog(directory: URL(fileURLWithPath: walDir), options: options)
            let replayed = try opened.replay()
            sessions.apply(replayed)
            Self.say("event log \(walDir): \(replayed.count) events replayed into \(sessions.count) sessions")
            log = opened
        } else {
            Self.say("no --wal-dir: POST /v1/events answers 503")
        }
        let token = try adminToken()
        if token == nil { Self.say("no admin token: /admin/* answers 403") }
        let runs = RunHolder(
            store: store, loader: loader, pointer: feedsURL.appendingPathComponent("current"), log: { Self.say($0) })
        let service = FeedService(
            runs: runs, rerank: SessionRerank(alpha: alpha, beta: beta), sessions: sessions, log: log,
            limits: .init(maxBodyBytes: maxBodyBytes, maxEventsPerRequest: maxEventsPerRequest), adminToken: token,
            metrics: metrics, sessionTTL: sessionTTL, cacheScores: !noScoreCache)
        Self.say("http://\(host):\(port)")
        let done = DispatchSemaphore(value: 0)
        let failure = Failure()
        let (host, port, interval) = (host, port, watchInterval)
        let watcher = Task {
            if interval > 0 { await runs.watch(every: interval, metrics: metrics) }
        }
        Task {
            do { try await service.run(host: host, port: port) } catch { failure.set(error) }
            done.signal()
        }
        done.wait()
        watcher.cancel()
        log?.close()
        if let error = failure.get() { throw error }
    }

    /// The server task's error, handed to the command's thread.
    final class Failure: @unchecked Sendable {
        private let lock = NSLock()
        private var error: (any Error)?
        func set(_ e: any Error) { lock.lock(); error = e; lock.unlock() }
        func get() -> (any Error)? { lock.lock(); defer { lock.unlock() }; return error }
    }
}

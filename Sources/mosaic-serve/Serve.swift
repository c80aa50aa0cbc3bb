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
        abstract: "Serve precomputed feeds over HTTP, re-ranked with the session's fresh events.",
        discussion: """
            Loads the feeds of --feeds (its `current` run, from `mosaic feed precompute`) for the \
            users with user mod --shards = --shard, and the content embeddings of their feeds' pins \
            from --world. API (JSON): GET /healthz; GET /v1/feed/{user}?k=20 (the precomputed feed); \
            POST /v1/feed/{user}?k=20 with {"events":[{"pin":1,"type":"closeup"},…]} (the feed \
            without the pins met in the session, re-ranked toward the session's closeups, clicks \
            and saves and away from its hides); GET /metrics (Prometheus text). Bad input gets a \
            4xx JSON error; a user of another shard gets 421 naming its shard.
            """)

    @Option(help: "Root folder of the published feeds.") var feeds = "out/feeds"
    @Option(help: "Root folder of the dataset the feeds were built from (pin embeddings).") var world = "out/world"
    @Option(help: "This shard's index.") var shard = 0
    @Option(help: "Number of serving shards.") var shards = 1
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8080
    @Option(help: "Session re-rank: weight of the similarity to the session's engaged pins.") var alpha: Float = 0.5
    @Option(help: "Session re-rank: weight of the similarity to the session's hidden pins.") var beta: Float = 0.5

    func run() throws {
        guard shards >= 1, (0..<shards).contains(shard) else {
            throw ValidationError("--shard must be in 0..<--shards (got \(shard) of \(shards))")
        }
        guard (1...65535).contains(port) else { throw ValidationError("--port must be in 1…65535") }
        let t0 = Date()
        let store = try FeedStore.load(
            feeds: URL(fileURLWithPath: feeds), world: URL(fileURLWithPath: world), shard: shard, shards: shards)
        FileHandle.standardError.write(
            Data(
                String(
                    format:
                        "mosaic-serve: run %@ (dataset %@), shard %d of %d: %d users, %d pins loaded in %.1f s; http://%@:%d\n",
                    store.runID, store.sourceRun, shard, shards, store.feeds.count, store.embeddings.count,
                    Date().timeIntervalSince(t0), host, port
                ).utf8))
        let service = FeedService(store: store, rerank: SessionRerank(alpha: alpha, beta: beta))
        let done = DispatchSemaphore(value: 0)
        let failure = Failure()
        let (host, port) = (host, port)
        Task {
            do { try await service.run(host: host, port: port) } catch { failure.set(error) }
            done.signal()
        }
        done.wait()
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

import Foundation
import Serving
import Synchronization
import Testing
import _TestSupport

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A small world and its published feeds, made once for the process tests (`mosaic generate`
/// and `mosaic feed precompute` on 2 ranks).
struct ServeFixture: Sendable {
    let world: URL, feeds: URL

    static let shared: Result<ServeFixture, Failure> = {
        do {
            let world = try MPIRun.temporaryDirectory("serve-proc-world")
            let gen = try MPIRun.mosaic(
                ranks: 2, ["generate", "--users", "60", "--pins", "800", "--days", "4", "--out", world.path])
            guard gen.status == 0 else { return .failure(Failure(message: gen.output)) }
            let feeds = try MPIRun.temporaryDirectory("serve-proc-feeds")
            let pre = try MPIRun.mosaic(
                ranks: 2, ["feed", "precompute", "--world", world.path, "--out", feeds.path, "--k", "8"])
            guard pre.status == 0 else { return .failure(Failure(message: pre.output)) }
            return .success(ServeFixture(world: world, feeds: feeds))
        } catch {
            return .failure(Failure(message: "\(error)"))
        }
    }()

    struct Failure: Error, Sendable { var message: String }
}

/// Ports for the servers of this test process: distinct per launch, derived from the pid.
let nextPort = Mutex(20_000 + Int(getpid() % 2_000) * 10)

/// A `mosaic-serve` process on loopback, started and stopped by a test.
final class ServeProcess: @unchecked Sendable {
    private(set) var process = Process()
    private(set) var port = 0
    var base: String { "http://127.0.0.1:\(port)" }

    /// Starts `mosaic-serve` with `arguments` (plus `--port`) and waits for `/healthz`; a port
    /// that is taken (something answers before the start, or the server exits) moves on to the
    /// next one, five times at most.
    init(_ arguments: [String], environment: [String: String] = [:]) async throws {
        var ready = false
        for _ in 0..<5 where !ready {
            port = nextPort.withLock { p in
                defer { p += 1 }
                return p
            }
            if (try? await request("/healthz")) != nil { continue }  // another server has this port
            process = Process()
            process.executableURL = URL(fileURLWithPath: MPIRun.servePath)
            process.arguments = arguments + ["--port", "\(port)"]
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, b in b }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            for _ in 0..<300 where process.isRunning {
                if let (status, _) = try? await request("/healthz"), status == 200, process.isRunning {
                    ready = true
                    break
                }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            if !ready { stop() }
        }
        try #require(ready, "mosaic-serve did not answer /healthz (last port \(port))")
    }

    /// SIGKILL: no shutdown code runs.
    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    /// One HTTP request; the status and body.
    func request(
        _ path: String, method: String = "GET", body: Data? = nil, headers: [String: String] = [:]
    ) async throws -> (Int, Data) {
        var r = URLRequest(url: URL(string: base + path)!)
        r.timeoutInterval = 20
        r.httpMethod = method
        r.httpBody = body
        for (k, v) in headers { r.setValue(v, forHTTPHeaderField: k) }
        let (data, response) = try await URLSession.shared.data(for: r)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
    }

    /// A JSON POST.
    func post(_ path: String, _ json: String, headers: [String: String] = [:]) async throws -> (Int, Data) {
        try await request(
            path, method: "POST", body: Data(json.utf8),
            headers: headers.merging(["Content-Type": "application/json"]) { a, _ in a })
    }

    /// `/healthz` decoded: the run and its version.
    func health() async throws -> (run: String, version: Int) {
        struct H: Decodable { var run: String, version: Int }
        let h = try JSONDecoder().decode(H.self, from: try await request("/healthz").1)
        return (h.run, h.version)
    }
}

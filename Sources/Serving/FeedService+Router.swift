import Foundation
import Hummingbird

extension FeedService {
    struct Health: ResponseEncodable {
        var status: String, run: String, source_run: String, version: Int, users: Int, shard: Int, shards: Int
    }

    struct ReloadAnswer: ResponseEncodable {
        var outcome: String, run: String, version: Int, reason: String?
    }

    /// Times every request into the route's histogram and turns every error into a JSON
    /// `{"error":{"message":…}}` answer: a wrong method on a known path is 405, an unknown path
    /// 404, an unexpected error 500, each with a reason.
    struct Observe: RouterMiddleware {
        typealias Context = BasicRequestContext
        let metrics: ServiceMetrics

        func handle(
            _ request: Request, context: Context, next: (Request, Context) async throws -> Response
        ) async throws -> Response {
            let t0 = DispatchTime.now().uptimeNanoseconds
            var route: String {
                guard let p = context.endpointPath, p != "NotFound" else { return "unmatched" }
                return "\(request.method) \(p)"
            }
            do {
                let response = try await next(request, context)
                metrics.request(route, status: response.status.code, seconds: Self.since(t0))
                return response
            } catch {
                let e = Self.json(error, request)
                metrics.request(route, status: e.status.code, seconds: Self.since(t0))
                throw e
            }
        }

        static func since(_ t0: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }

        static let paths = [
            "/healthz", "/readyz", "/metrics", "/v1/events", "/admin/reload", "/admin/rotate", "/v1/feed/",
            "/v1/session/",
        ]

        static func json(_ error: any Error, _ request: Request) -> HTTPError {
            if let e = error as? HTTPError, e.body != nil { return e }
            if let e = error as? any HTTPResponseError {
                let path = String(request.uri.path.prefix(200))
                switch e.status {
                case .notFound:
                    let known = paths.contains {
                        $0.hasSuffix("/")
                            ? path.hasPrefix($0) && path.count > $0.count && !path.dropFirst($0.count).contains("/")
                            : path == $0
                    }
                    if known {
                        return HTTPError(.methodNotAllowed, message: "\(request.method) is not allowed on \(path)")
                    }
                    return HTTPError(.notFound, message: "no route \(path)")
                case .contentTooLarge: return HTTPError(.contentTooLarge, message: "request body too large")
                default: return HTTPError(e.status, message: "\(e.status.reasonPhrase)")
                }
            }
            return HTTPError(.internalServerError, message: "internal error: \(error)")
        }
    }

    static func query(_ request: Request) -> [String: Substring] {
        ["country": request.uri.queryParameters["country"], "device": request.uri.queryParameters["device"]]
            .compactMapValues { $0 }
    }

    /// The request body (at most `limits.maxBodyBytes`: 413 above), which must be JSON (415).
    func jsonBody(_ request: Request) async throws -> Data {
        let type = request.headers[.contentType] ?? ""
        guard type.lowercased().split(separator: ";").first?.trimmingCharacters(in: .whitespaces) == "application/json"
        else {
            throw HTTPError(
                .unsupportedMediaType, message: "Content-Type '\(type.prefix(64))' is not application/json")
        }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limits.maxBodyBytes {
            throw HTTPError(.contentTooLarge, message: "body of \(length) bytes; at most \(limits.maxBodyBytes)")
        }
        do {
            return Data(try await request.body.collect(upTo: limits.maxBodyBytes).readableBytesView)
        } catch {
            throw HTTPError(.contentTooLarge, message: "body over \(limits.maxBodyBytes) bytes")
        }
    }

    /// Checks the bearer token of an admin request: 403 when the admin API is disabled, 401
    /// without the right token.
    func authorize(_ request: Request) throws {
        guard let adminToken else {
            throw HTTPError(
                .forbidden, message: "the admin API is disabled (start with --admin-token-file or MOSAIC_ADMIN_TOKEN)")
        }
        let given = Array((request.headers[.authorization] ?? "").utf8), wanted = Array("Bearer \(adminToken)".utf8)
        // Compare every byte whatever the first difference (no timing hint about the token).
        var diff = given.count ^ wanted.count
        for i in 0..<min(given.count, wanted.count) { diff |= Int(given[i] ^ wanted[i]) }
        guard diff == 0 else {
            throw HTTPError(
                .unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "missing or wrong bearer token")
        }
    }

    /// The router of the API (docs/serving.md).
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        let service = self
        router.add(middleware: Observe(metrics: metrics))
        router.get("healthz") { _, _ in
            let run = service.runs.current
            return Health(
                status: "ok", run: run.store.runID, source_run: run.store.sourceRun, version: run.version,
                users: run.store.feeds.count, shard: run.store.shard, shards: run.store.shards)
        }
        router.get("readyz") { _, _ -> Response in
            let failed = service.log?.failure
            if let failed { throw HTTPError(.serviceUnavailable, message: "not ready: \(failed)") }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ready\"}")))
        }
        router.get("v1/feed/:user") { request, context in
            let a = try service.feed(
                user: try context.parameters.require("user"), k: request.uri.queryParameters["k"],
                cursor: request.uri.queryParameters["cursor"], query: Self.query(request))
            service.metrics.feed(size: a.pins.count)
            return a
        }
        router.post("v1/feed/:user") { request, context in
            let data = try await service.jsonBody(request)
            let body: SessionBody
            do { body = try JSONDecoder().decode(SessionBody.self, from: data) } catch {
                throw HTTPError(.badRequest, message: "body is not {\"events\":[…]}: \(Self.describe(error))")
            }
            let a = try service.answer(
                user: try context.parameters.require("user"), k: request.uri.queryParameters["k"],
                session: body.events, query: Self.query(request))
            service.metrics.feed(size: a.pins.count)
            return a
        }
        router.post("v1/events") { request, _ in try await service.acceptEvents(try await service.jsonBody(request)) }
        router.get("v1/session/:user") { _, context in try service.session(user: try context.parameters.require("user"))
        }
        router.post("admin/reload") { request, _ -> ReloadAnswer in
            try service.authorize(request)
            let outcome = await service.runs.reloadInBackground(metrics: service.metrics)
            let run = service.runs.current
            switch outcome {
            case .swapped:
                return ReloadAnswer(outcome: "swapped", run: run.store.runID, version: run.version, reason: nil)
            case .unchanged:
                return ReloadAnswer(outcome: "unchanged", run: run.store.runID, version: run.version, reason: nil)
            case .busy: throw HTTPError(.conflict, message: "a reload is already running")
            case .refused(let reason):
                throw HTTPError(
                    .unprocessableContent,
                    message: "run refused, still serving \(run.store.runID) (version \(run.version)): \(reason)")
            }
        }
        router.post("admin/rotate") { request, _ -> Response in
            try service.authorize(request)
            guard let log = service.log else {
                throw HTTPError(.serviceUnavailable, message: "no event log (--wal-dir)")
            }
            let url = try await log.rotate()
            let file = url.map { "\"\($0.lastPathComponent)\"" } ?? "null"
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "{\"file\":\(file)}")))
        }
        router.get("metrics") { _, _ in
            let run = service.runs.current
            return service.metrics.text(
                run: run.store.runID, version: run.version, sessions: service.sessions.count,
                evictions: service.sessions.evictions, walFailed: service.log?.failure != nil)
        }
        return router
    }

    /// Serves on `host:port` until the process is stopped (SIGTERM or SIGINT: graceful).
    public func run(host: String, port: Int) async throws {
        let app = Application(router: router(), configuration: .init(address: .hostname(host, port: port)))
        try await app.runService()
    }
}

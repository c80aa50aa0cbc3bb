import Foundation
import Serving
import Testing
import _TestSupport

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// One bad request: method, path, body, content type, extra headers, and the status expected.
struct BadRequest: Sendable, CustomStringConvertible {
    var method = "GET", path: String, body: Data? = nil, type: String? = "application/json"
    var headers: [String: String] = [:]
    var status: Int
    var description: String {
        "\(method) \(path.prefix(60)) \(body.map { String(decoding: $0.prefix(60), as: UTF8.self) } ?? "")"
    }

    static func events(_ json: String, _ status: Int = 400) -> BadRequest {
        BadRequest(method: "POST", path: "/v1/events", body: Data(json.utf8), status: status)
    }
    static func event(_ fields: String, _ status: Int = 400) -> BadRequest {
        events(#"{"events":[{\#(fields)}]}"#, status)
    }

    /// At least 30 requests, each wrong in one way.
    static let table: [BadRequest] = [
        BadRequest(path: "/v1/feed/abc", status: 400),
        BadRequest(path: "/v1/feed/-1", status: 400),
        BadRequest(path: "/v1/feed/99999999999999999999", status: 400),
        BadRequest(path: "/v1/feed/1.5", status: 400),
        BadRequest(path: "/v1/feed/%FF%FE", status: 400),
        BadRequest(path: "/v1/feed/0?k=0", status: 400),
        BadRequest(path: "/v1/feed/0?k=501", status: 400),
        BadRequest(path: "/v1/feed/0?k=-3", status: 400),
        BadRequest(path: "/v1/feed/0?k=ten", status: 400),
        BadRequest(path: "/v1/feed/0?cursor=garbage", status: 400),
        BadRequest(path: "/v1/feed/0?cursor=1.-5", status: 400),
        BadRequest(path: "/v1/feed/0?cursor=987654.0", status: 410),
        BadRequest(path: "/v1/session/abc", status: 400),
        BadRequest(method: "POST", path: "/v1/events", body: Data(#"{"events":[]}"#.utf8), type: nil, status: 415),
        BadRequest(method: "POST", path: "/v1/events", body: Data("user=1".utf8), type: "text/plain", status: 415),
        BadRequest(method: "POST", path: "/v1/feed/0", body: Data("{}".utf8), type: "text/csv", status: 415),
        events("not json"),
        BadRequest(method: "POST", path: "/v1/events", body: Data([0x7B, 0xFF, 0xFE, 0x7D]), status: 400),
        events("[]"),
        events("{}"),
        events(#"{"events":[]}"#),
        events(#"{"events":"save"}"#),
        events(#"{"events":[null]}"#),
        event(#""pin":1,"type":"save""#),
        event(#""user":"x","pin":1,"type":"save""#),
        event(#""user":-1,"pin":1,"type":"save""#),
        event(#""user":1,"pin":1.5,"type":"save""#),
        event(#""user":true,"pin":1,"type":"save""#),
        event(#""user":1,"pin":[1],"type":"save""#),
        event(#""user":1,"pin":1,"type":"like""#),
        event(#""user":1,"pin":1,"type":3"#),
        event(#""user":1,"pin":1,"type":"save","ts":-5"#),
        event(#""user":1,"pin":1,"type":"save","ts":100000000000000000"#),
        event(#""user":1,"pin":1,"type":"save","usr":2"#),
        event(#""user":1,"pin":1,"type":"save","surface":"moon""#),
        event(#""user":1,"pin":1,"type":"save","position":-1"#),
        events(
            #"{"events":["# + Array(repeating: #"{"user":1,"pin":1,"type":"save"}"#, count: 1001).joined(separator: ",")
                + "]}"),
        BadRequest(
            method: "POST", path: "/v1/events",
            body: Data(
                (#"{"events":[{"user":1,"pin":1,"type":"save"}],"pad":""# + String(repeating: "x", count: 2 << 20)
                    + #""}"#).utf8),
            status: 413),
        BadRequest(
            method: "POST", path: "/v1/feed/0", body: Data(#"{"events":[{"pin":1,"type":"wow"}]}"#.utf8), status: 400),
        BadRequest(method: "PUT", path: "/v1/events", body: Data("{}".utf8), status: 405),
        BadRequest(method: "DELETE", path: "/v1/feed/1", status: 405),
        BadRequest(path: "/v1/events", status: 405),
        BadRequest(path: "/nowhere", status: 404),
        BadRequest(path: "/v1/feed/1/more", status: 404),
        BadRequest(method: "POST", path: "/admin/reload", status: 401),
        BadRequest(method: "POST", path: "/admin/reload", headers: ["Authorization": "Bearer wrong"], status: 401),
        BadRequest(method: "POST", path: "/admin/rotate", headers: ["Authorization": "t0ken"], status: 401),
    ]
}

extension ServeProcessTests {
    @Test("a table of bad requests: every one a 4xx JSON error with a reason, and the server stays up")
    func badRequests() async throws {
        let f = try fixture()
        let wal = try MPIRun.temporaryDirectory("serve-bad-wal")
        let server = try await ServeProcess(
            ["--feeds", f.feeds.path, "--world", f.world.path, "--wal-dir", wal.path],
            environment: ["MOSAIC_ADMIN_TOKEN": "t0ken"])
        defer { server.stop() }
        #expect(BadRequest.table.count >= 30)
        struct ErrorBody: Decodable {
            struct Inner: Decodable { var message: String }
            var error: Inner
        }
        for bad in BadRequest.table {
            var headers = bad.headers
            if let type = bad.type, bad.body != nil { headers["Content-Type"] = type }
            let (status, data) = try await server.request(
                bad.path, method: bad.method, body: bad.body, headers: headers)
            #expect(status == bad.status, "\(bad): \(status) \(String(decoding: data.prefix(300), as: UTF8.self))")
            let reason = try? JSONDecoder().decode(ErrorBody.self, from: data).error.message
            #expect(reason.map { !$0.isEmpty } == true, "\(bad): \(String(decoding: data.prefix(300), as: UTF8.self))")
            #expect(server.process.isRunning, "\(bad) stopped the server")
        }
        let (status, _) = try await server.request("/v1/feed/0?k=3")
        #expect(status == 200)
        let (_, metrics) = try await server.request("/metrics")
        #expect(String(decoding: metrics, as: UTF8.self).contains("mosaic_events_rejected_total"))
        let (_, session) = try await server.request("/v1/session/1")
        #expect(try JSONDecoder().decode(FeedService.SessionAnswer.self, from: session).events.isEmpty)
    }
}

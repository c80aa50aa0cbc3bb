import EventData
import Foundation
import Synchronization
import Testing
import _TestSupport

@testable import Serving

/// `n` events of users 2, 4, … over pins 100, 101, … (types cycling), at fixed times.
func sampleEvents(_ n: Int, from start: Int = 0) -> [LoggedEvent] {
    var out: [LoggedEvent] = []
    for i in start..<start + n {
        let user = Int64(2 * (i % 5)), pin = Int64(100 + i), ts = 1_700_000_000_000 + Int64(i)
        out.append(
            LoggedEvent(
                user: user, pin: pin, type: EventType.allCases[i % 5], timestampMs: ts, position: Int32(i % 7),
                surface: .home, session: 9))
    }
    return out
}

/// Waits (without a deadline in the assertion) until `condition` holds, polling.
func eventually(_ condition: () -> Bool) async throws {
    for _ in 0..<2_000 where !condition() { try await Task.sleep(nanoseconds: 5_000_000) }
}

@Suite("Write-ahead event log")
struct EventLogTests {
    func strip(_ e: [LoggedEvent]) -> [LoggedEvent] {
        e.map {
            var x = $0; x.seq = 0; return x
        }
    }

    @Test("acknowledged events come back once from the rotated files after a restart, numbered 1…n")
    func replayAfterRestart() async throws {
        let dir = try MPIRun.temporaryDirectory("wal")
        let log = try EventLog(directory: dir)
        var acked: [LoggedEvent] = []
        for batch in [sampleEvents(3), sampleEvents(4, from: 3), sampleEvents(3, from: 7)] {
            acked += try await log.append(batch)
        }
        #expect(acked.map(\.seq) == Array(1...10))
        log.close()
        let reopened = try EventLog(directory: dir)
        let replayed = try reopened.replay()
        #expect(replayed == acked)
        #expect(strip(replayed) == sampleEvents(10))
        #expect(try await reopened.append(sampleEvents(1)).map(\.seq) == [11], "numbering goes on after a restart")
        reopened.close()
    }

    @Test("a torn or corrupted last record is ignored on replay; the records before it are kept")
    func tornTail() async throws {
        for damage in ["torn", "corrupted", "zeros"] {
            let dir = try MPIRun.temporaryDirectory("wal-torn")
            let log = try EventLog(directory: dir)
            _ = try await log.append(sampleEvents(5))
            log.close()
            let segment = try #require(try EventLog.segments(in: dir).last?.1)
            var bytes = try Data(contentsOf: URL(fileURLWithPath: segment))
            var extra = [UInt8]()
            sampleEvents(1, from: 5)[0].encode(into: &extra)
            switch damage {
            case "torn": bytes.append(contentsOf: extra.prefix(30))
            case "corrupted":
                extra[20] ^= 0xFF
                bytes.append(contentsOf: extra)
            default: bytes.append(contentsOf: [UInt8](repeating: 0, count: LoggedEvent.recordSize))
            }
            try bytes.write(to: URL(fileURLWithPath: segment))
            let reopened = try EventLog(directory: dir)
            #expect(strip(try reopened.replay()) == sampleEvents(5), "\(damage)")
            reopened.close()
        }
    }

    @Test("group commit: every append queued while an fsync runs shares the next one")
    func groupCommit() async throws {
        let entered = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        let first = Flag()
        var options = EventLog.Options()
        options.beforeSync = {
            if first.setOnce() {
                entered.signal()
                release.wait()
            }
        }
        let log = try EventLog(directory: try MPIRun.temporaryDirectory("wal-group"), options: options)
        let a = Task { try await log.append(sampleEvents(1)) }
        await withCheckedContinuation { c in
            DispatchQueue.global().async {
                entered.wait(); c.resume()
            }
        }
        // The writer is inside the first fsync: 63 requests queue behind it.
        let rest = (0..<63).map { i in Task { try await log.append(sampleEvents(1, from: i + 1)) } }
        try await eventually { log.pendingRecords == 63 }
        #expect(log.pendingRecords == 63)
        release.signal()
        var seqs = try await a.value.map(\.seq)
        for t in rest { seqs += try await t.value.map(\.seq) }
        #expect(seqs.sorted() == Array(1...64))
        #expect(log.syncCount == 2, "one fsync for the first append, one for the 63 queued behind it")
        log.close()
    }

    @Test("rotation by size and on demand writes `mosaic ingest` events files; nothing lost or doubled")
    func rotation() async throws {
        let dir = try MPIRun.temporaryDirectory("wal-rotate")
        let log = try EventLog(
            directory: dir, options: .init(maxSegmentBytes: 4 * LoggedEvent.recordSize, maxSegmentAge: 0, shard: 3))
        var acked: [LoggedEvent] = []
        for i in 0..<10 { acked += try await log.append(sampleEvents(1, from: i)) }
        let last = try await log.rotate()
        let files = try FileManager.default.contentsOfDirectory(atPath: log.rotatedDirectory.path).sorted()
        #expect(files.count >= 3, "\(files)")
        #expect(last.map { files.contains($0.lastPathComponent) } == true)
        let text = try String(contentsOf: try #require(last), encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.first.map(String.init) == LoggedEvent.csvHeader)
        let id = LoggedEvent.eventID(seq: acked[9].seq, shard: 3)
        #expect(lines.last == "\(id),8,109,hide,1700000000009,2,home,9")
        #expect(try log.replay() == acked)
        log.close()
    }

    @Test("commits go on while a rotated segment is being converted", .timeLimit(.minutes(1)))
    func rotationDoesNotBlockCommits() async throws {
        let release = DispatchSemaphore(value: 0)
        let first = Flag()
        var options = EventLog.Options(maxSegmentBytes: LoggedEvent.recordSize, maxSegmentAge: 0)
        options.beforeRotation = { if first.setOnce() { release.wait() } }
        let dir = try MPIRun.temporaryDirectory("wal-rotation-async")
        let log = try EventLog(directory: dir, options: options)
        var acked = try await log.append(sampleEvents(1))  // fills the segment: its conversion waits
        acked += try await log.append(sampleEvents(2, from: 1))  // acknowledged all the same
        #expect(acked.map(\.seq) == [1, 2, 3])
        release.signal()
        log.close()
        let reopened = try EventLog(directory: dir)
        #expect(try reopened.replay() == acked)
        reopened.close()
    }

    @Test("a crash after the rotated file is written but before the segment is deleted doubles nothing")
    func crashDuringRotation() async throws {
        let dir = try MPIRun.temporaryDirectory("wal-crash")
        let log = try EventLog(directory: dir)
        let acked = try await log.append(sampleEvents(6))
        log.close()
        let segment = try #require(try EventLog.segments(in: dir).last?.1)
        let saved = try Data(contentsOf: URL(fileURLWithPath: segment))
        try EventLog(directory: dir).close()  // rotates the segment and deletes it
        try saved.write(to: URL(fileURLWithPath: segment))  // as if the delete had not happened
        let reopened = try EventLog(directory: dir)
        #expect(try reopened.replay() == acked)
        reopened.close()
    }
}

/// A flag shared between tasks; `setOnce` is true for its first caller only.
final class Flag: Sendable {
    let state = Mutex(false)
    var isSet: Bool { state.withLock { $0 } }
    func setOnce() -> Bool {
        state.withLock { s in
            defer { s = true }
            return !s
        }
    }
}

@Suite("Session store")
struct SessionStoreTests {
    @Test("at most `capacity` sessions: the least recently used one leaves")
    func lru() {
        let store = SessionStore(capacity: 2, maxEvents: 3)
        store.apply(
            sampleEvents(1).map {
                var e = $0; e.user = 1; e.seq = 1; return e
            })
        store.update(2) { $0.served = [7] }
        _ = store.session(1)  // 1 is now more recent than 2
        store.update(3) { $0.served = [8] }
        #expect(store.count == 2 && store.evictions == 1)
        #expect(store.session(2) == nil && store.session(1) != nil && store.session(3)?.served == [8])
    }

    @Test("events are kept in sequence order, the latest `maxEvents`")
    func order() {
        let store = SessionStore(capacity: 4, maxEvents: 3)
        let e = (1...5).map { i in LoggedEvent(seq: UInt64(i), user: 1, pin: Int64(i), type: .save, timestampMs: 0) }
        store.apply([e[3], e[4]])
        store.apply([e[0], e[2], e[1]])
        #expect(store.session(1)?.events.map(\.seq) == [3, 4, 5])
        #expect(store.session(1)?.removed == [3, 4, 5])
    }
}

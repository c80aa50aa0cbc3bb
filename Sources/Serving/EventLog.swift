import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The serving shard's write-ahead log of accepted events.
///
/// `append` returns once the events are written and `fsync`ed: one writer thread takes every
/// batch queued while the previous `fsync` ran and commits them with one write and one `fsync`
/// (group commit), so concurrent requests share the cost of a sync. Records are fixed-size
/// (`LoggedEvent.recordSize` bytes, each with a checksum) in segment files
/// `<dir>/segment-NNNNNNNN.wal`. A segment rotates when it passes `maxSegmentBytes` or
/// `maxSegmentAge` seconds, on `rotate()`, and at start-up: its records are written to
/// `<dir>/rotated/events-<first seq>-<last seq>.csv` in the `mosaic ingest` events format
/// (written to a temporary name, synced, renamed), then the segment is deleted. A torn or
/// corrupted record ends a segment's replay (the records after it were never acknowledged).
/// Every acknowledged event is in exactly one rotated file or live segment, whatever the
/// moment of a crash: a segment and its file have the same name range, and rewriting the file
/// from the segment is idempotent.
///
/// Events with a client event id (`LoggedEvent.clientKey`) are logged once per user and id: a
/// retry of an acknowledged (or queued) event is dropped by `append`, which still answers after
/// the next sync. The keys of a rotated file go to `events-<first>-<last>.keys` beside it (written
/// before the events file), and `replay()` remembers them, so retries are dropped across
/// restarts too (for the events still in `rotated/`; at most `dedupCapacity` keys are kept).
public final class EventLog: @unchecked Sendable {
    /// When a segment rotates and how rotated files name their events.
    public struct Options: Sendable {
        /// Rotate a segment that holds at least this many bytes (default 64 MiB).
        public var maxSegmentBytes: Int = 64 << 20
        /// Rotate a non-empty segment this many seconds after its first record (default 3600;
        /// 0: never by age).
        public var maxSegmentAge: Double = 3600
        /// The serving shard, part of every rotated `event_id` (`LoggedEvent.eventID`).
        public var shard: Int = 0
        /// Test hook: runs on the writer thread before each `fsync`.
        var beforeSync: (@Sendable () -> Void)? = nil
        /// Test hook: runs on the rotation queue before a closed segment is converted.
        var beforeRotation: (@Sendable () -> Void)? = nil
        /// Called after each `fsync` with its duration in seconds.
        public var onSync: (@Sendable (Double) -> Void)? = nil

        public init(maxSegmentBytes: Int = 64 << 20, maxSegmentAge: Double = 3600, shard: Int = 0) {
            self.maxSegmentBytes = maxSegmentBytes
            self.maxSegmentAge = maxSegmentAge
            self.shard = shard
        }
    }

    /// Errors of the log (a failed write or sync stops the log: later appends fail too).
    public struct Failure: Error, CustomStringConvertible {
        /// What failed (the call and errno).
        public var description: String
    }

    /// The log's folder (`--wal-dir`) and its `rotated/` folder of ingest-format files.
    public let directory: URL, rotatedDirectory: URL
    let options: Options
    let cond = NSCondition()
    // Guarded by `cond`:
    var pending: [UInt8] = []
    var waiters: [(CheckedContinuation<Void, any Error>)] = []
    var rotateWaiters: [CheckedContinuation<URL?, any Error>] = []
    var nextSeq: UInt64
    var failed: String?
    var closing = false
    var syncs = 0
    var seen = Set<DedupKey>(), seenOrder: [DedupKey] = [], seenNext = 0
    // Owned by the writer thread:
    var fd: Int32 = -1
    var segmentNumber = 0
    var segmentBytes = 0
    var segmentStart: Date?
    var writer: Thread?
    let finished = DispatchSemaphore(value: 0)
    /// Converts closed segments into rotated files, in order.
    let rotations = DispatchQueue(label: "mosaic-wal-rotation")

    /// A user's client event key.
    struct DedupKey: Hashable { var user: Int64, key: UInt64 }
    /// Client event keys remembered at most (the oldest forgotten first).
    public var dedupCapacity = 1 << 20

    /// Opens the log in `directory` (created when missing): rotates every segment left by a
    /// previous process (replaying its valid records) and starts a new one.
    public init(directory: URL, options: Options = Options()) throws {
        self.directory = directory
        self.rotatedDirectory = directory.appendingPathComponent("rotated")
        self.options = options
        let fm = FileManager.default
        try fm.createDirectory(at: rotatedDirectory, withIntermediateDirectories: true)
        var last: UInt64 = 0
        // Files the night moved to `ingested/` still hold sequence numbers: never reuse them.
        let ingested = directory.appendingPathComponent("ingested").path
        for name in (try? fm.contentsOfDirectory(atPath: ingested)) ?? [] {
            if let range = Self.seqRange(ofRotated: name) { last = max(last, range.upperBound) }
        }
        for name in try fm.contentsOfDirectory(atPath: rotatedDirectory.path) {
            if let range = Self.seqRange(ofRotated: name) { last = max(last, range.upperBound) }
            // A temporary file of a rotation cut short: its segment is still there and rotates again.
            if name.hasPrefix("."), name.hasSuffix(".tmp") {
                try fm.removeItem(at: rotatedDirectory.appendingPathComponent(name))
            }
        }
        for (number, path) in try Self.segments(in: directory) {
            if let url = try Self.rotateSegment(path, into: rotatedDirectory, shard: options.shard) {
                last = max(last, Self.seqRange(ofRotated: url.lastPathComponent)?.upperBound ?? 0)
            }
            segmentNumber = max(segmentNumber, number)
        }
        nextSeq = last + 1
        try openSegment()
        let thread = Thread { self.writeLoop() }  // holds the log until `close()`
        thread.name = "mosaic-wal"
        writer = thread
        thread.start()
    }

    deinit { if fd >= 0 { _ = Glibc.close(fd) } }

    /// Every event of the rotated files (the events acknowledged before this process, and the
    /// ones it rotated since), in sequence order, with their client keys: what the session state
    /// is rebuilt from. Their client keys are remembered (a retry of them is dropped).
    public func replay() throws -> [LoggedEvent] {
        var files: [(ClosedRange<UInt64>, String)] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: rotatedDirectory.path) {
            if let r = Self.seqRange(ofRotated: name) { files.append((r, name)) }
        }
        var events: [LoggedEvent] = []
        for (_, name) in files.sorted(by: { $0.0.lowerBound < $1.0.lowerBound }) {
            let url = rotatedDirectory.appendingPathComponent(name)
            let text = try String(contentsOf: url, encoding: .utf8)
            var keys: [UInt64: UInt64] = [:]
            let keysURL = url.deletingPathExtension().appendingPathExtension("keys")
            if let k = try? String(contentsOf: keysURL, encoding: .utf8) {
                for line in k.split(separator: "\n").dropFirst() {
                    let f = line.split(separator: ",")
                    if f.count == 3, let seq = UInt64(f[0]), let key = UInt64(f[2]) { keys[seq] = key }
                }
            }
            for line in text.split(separator: "\n").dropFirst() {
                if var e = LoggedEvent.parse(csvLine: line) {
                    e.clientKey = keys[e.seq] ?? 0
                    events.append(e)
                }
            }
        }
        cond.withLock { for e in events where e.clientKey != 0 { remember(DedupKey(user: e.user, key: e.clientKey)) } }
        return events
    }

    /// Adds `key` to the remembered client keys (forgetting the oldest past `dedupCapacity`);
    /// false when it was there. Call with `cond` held.
    func remember(_ key: DedupKey) -> Bool {
        guard seen.insert(key).inserted else { return false }
        if seenOrder.count < dedupCapacity {
            seenOrder.append(key)
        } else {
            seen.remove(seenOrder[seenNext])
            seenOrder[seenNext] = key
            seenNext = (seenNext + 1) % dedupCapacity
        }
        return true
    }

    /// Appends `events`, numbering them, and returns them with their sequence numbers once they
    /// are written and synced. An event whose client key (`clientKey` ≠ 0) this user already
    /// logged — earlier, or earlier in `events` — is dropped: it is not in the result, and the
    /// answer still waits for the next sync (the first copy is durable by then). Throws `Failure`
    /// when the log has failed or is closed.
    public func append(_ events: [LoggedEvent]) async throws -> [LoggedEvent] {
        guard !events.isEmpty else { return [] }
        var numbered: [LoggedEvent] = []
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
            cond.lock()
            defer { cond.unlock() }
            if let failed { return c.resume(throwing: Failure(description: failed)) }
            if closing { return c.resume(throwing: Failure(description: "the event log is closed")) }
            numbered.reserveCapacity(events.count)
            for var e in events where e.clientKey == 0 || remember(DedupKey(user: e.user, key: e.clientKey)) {
                e.seq = nextSeq
                nextSeq += 1
                e.encode(into: &pending)
                numbered.append(e)
            }
            waiters.append(c)
            cond.signal()
        }
        return numbered
    }

    /// Rotates the current segment now (after the events queued before the call are synced);
    /// returns the rotated file, or nil when the segment was empty.
    public func rotate() async throws -> URL? {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<URL?, any Error>) in
            cond.lock()
            defer { cond.unlock() }
            if let failed { return c.resume(throwing: Failure(description: failed)) }
            rotateWaiters.append(c)
            cond.signal()
        }
    }

    /// Why the log stopped accepting events (a write, sync or rotation failed), or nil.
    public var failure: String? { cond.withLock { failed } }

    /// Records queued and not yet synced.
    public var pendingRecords: Int { cond.withLock { pending.count / LoggedEvent.recordSize } }
    /// `fsync` calls so far (each commits every batch queued before it).
    public var syncCount: Int { cond.withLock { syncs } }

    /// Syncs what is queued, stops the writer thread and closes the segment (not rotated: the
    /// next start rotates it).
    public func close() {
        let first = cond.withLock {
            defer { closing = true }
            cond.signal()
            return !closing
        }
        if first { finished.wait() }
        rotations.sync {}  // the rotations already started end
    }

    func writeLoop() {
        while true {
            cond.lock()
            while pending.isEmpty && waiters.isEmpty && rotateWaiters.isEmpty && !closing && !ageDue() {
                if let start = segmentStart, options.maxSegmentAge > 0 {
                    _ = cond.wait(until: start.addingTimeInterval(options.maxSegmentAge))
                } else {
                    cond.wait()
                }
            }
            let batch = pending, batchWaiters = waiters, rotators = rotateWaiters
            pending.removeAll(keepingCapacity: true)
            waiters.removeAll()
            rotateWaiters.removeAll()
            let stop = closing && batch.isEmpty && batchWaiters.isEmpty
            let failedBefore = failed
            cond.unlock()
            if stop { break }
            var error: String?
            if !batch.isEmpty { error = commit(batch) } else if !batchWaiters.isEmpty { error = failedBefore }
            for w in batchWaiters {
                if let error { w.resume(throwing: Failure(description: error)) } else { w.resume() }
            }
            if error == nil && (!rotators.isEmpty || segmentBytes >= options.maxSegmentBytes || ageDue()) {
                // Switch to a new segment here; the old one becomes a rotated file on the
                // rotation queue, so commits do not wait for its conversion.
                let old = Self.segmentPath(directory, segmentNumber)
                _ = Glibc.close(fd)
                fd = -1
                do { try openSegment() } catch {
                    for r in rotators { r.resume(throwing: error) }
                    fail("cannot open the next segment: \(error)")
                    continue
                }
                let (rotated, shard, hook) = (rotatedDirectory, options.shard, options.beforeRotation)
                rotations.async {
                    hook?()
                    do {
                        let url = try Self.rotateSegment(old, into: rotated, shard: shard)
                        for r in rotators { r.resume(returning: url) }
                    } catch {
                        // The segment stays (its events are durable); the next start rotates it.
                        FileHandle.standardError.write(Data("event log: rotation of \(old) failed: \(error)\n".utf8))
                        for r in rotators { r.resume(throwing: error) }
                    }
                }
            } else {
                for r in rotators { r.resume(throwing: Failure(description: error ?? "the event log failed")) }
            }
        }
        _ = Glibc.close(fd)
        fd = -1
        finished.signal()
    }

    func ageDue() -> Bool {
        guard let start = segmentStart, options.maxSegmentAge > 0 else { return false }
        return Date().timeIntervalSince(start) >= options.maxSegmentAge
    }

    /// Writes and syncs `batch`; the error text, or nil.
    func commit(_ batch: [UInt8]) -> String? {
        let wrote = batch.withUnsafeBytes { Self.writeAll(fd, $0) }
        guard wrote else { return fail("write to segment \(segmentNumber) failed: errno \(errno)") }
        options.beforeSync?()
        let t0 = DispatchTime.now().uptimeNanoseconds
        guard fsync(fd) == 0 else { return fail("fsync of segment \(segmentNumber) failed: errno \(errno)") }
        options.onSync?(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        cond.withLock { syncs += 1 }
        if segmentStart == nil { segmentStart = Date() }
        segmentBytes += batch.count
        return nil
    }

    @discardableResult
    func fail(_ message: String) -> String {
        cond.withLock { if failed == nil { failed = message } }
        return message
    }

    func openSegment() throws {
        segmentNumber += 1
        let path = Self.segmentPath(directory, segmentNumber)
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(description: "cannot create \(path): errno \(errno)") }
        segmentBytes = 0
        segmentStart = nil
        try Self.syncDirectory(directory.path)
    }

    static func segmentPath(_ dir: URL, _ n: Int) -> String {
        dir.appendingPathComponent(String(format: "segment-%08d.wal", n)).path
    }

    /// The segments in `dir`, by number.
    static func segments(in dir: URL) throws -> [(Int, String)] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).compactMap { name -> (Int, String)? in
            guard name.hasPrefix("segment-"), name.hasSuffix(".wal"),
                let n = Int(name.dropFirst(8).dropLast(4))
            else { return nil }
            return (n, dir.appendingPathComponent(name).path)
        }.sorted { $0.0 < $1.0 }
    }

    /// The valid records of the segment at `path`, up to the first torn or corrupted one.
    public static func readSegment(_ path: String) throws -> [LoggedEvent] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return data.withUnsafeBytes { raw in
            var out: [LoggedEvent] = []
            var offset = 0
            while offset + LoggedEvent.recordSize <= raw.count {
                let slice = UnsafeRawBufferPointer(rebasing: raw[offset..<offset + LoggedEvent.recordSize])
                guard let e = LoggedEvent.decode(slice) else { break }
                out.append(e)
                offset += LoggedEvent.recordSize
            }
            return out
        }
    }

    /// Writes the segment's valid records to `rotated/events-<first>-<last>.csv` (temporary
    /// name, sync, rename, sync the folder), then deletes the segment. Nil when it was empty.
    static func rotateSegment(_ path: String, into rotated: URL, shard: Int) throws -> URL? {
        let events = try readSegment(path)
        var url: URL?
        if let first = events.first, let last = events.last {
            let name = String(format: "events-%012llu-%012llu.csv", first.seq, last.seq)
            let target = rotated.appendingPathComponent(name)
            // The client keys first: a rotated events file always has its keys beside it.
            let keyed = events.filter { $0.clientKey != 0 }
            if !keyed.isEmpty {
                var keys = LoggedEvent.keysHeader + "\n"
                for e in keyed { keys += e.keysLine() }
                try writeDurably(keys, to: target.deletingPathExtension().appendingPathExtension("keys"))
            }
            var text = LoggedEvent.csvHeader + "\n"
            text.reserveCapacity(events.count * 64)
            for e in events { text += e.csvLine(shard: shard) }
            try writeDurably(text, to: target)
            url = target
        }
        guard unlink(path) == 0 else { throw Failure(description: "cannot delete \(path): errno \(errno)") }
        try syncDirectory((path as NSString).deletingLastPathComponent)
        return url
    }

    /// Writes `text` to `target` through a temporary name beside it (write, sync, rename, sync
    /// the folder).
    static func writeDurably(_ text: String, to target: URL) throws {
        let folder = target.deletingLastPathComponent()
        let tmp = folder.appendingPathComponent(".\(target.lastPathComponent).tmp")
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(description: "cannot create \(tmp.path): errno \(errno)") }
        let ok = Array(text.utf8).withUnsafeBytes { writeAll(fd, $0) } && fsync(fd) == 0
        _ = Glibc.close(fd)
        guard ok, rename(tmp.path, target.path) == 0 else {
            throw Failure(description: "cannot write \(target.path): errno \(errno)")
        }
        try syncDirectory(folder.path)
    }

    /// The sequence numbers a rotated file's name covers, or nil for another name.
    static func seqRange(ofRotated name: String) -> ClosedRange<UInt64>? {
        guard name.hasPrefix("events-"), name.hasSuffix(".csv") else { return nil }
        let parts = name.dropFirst(7).dropLast(4).split(separator: "-")
        guard parts.count == 2, let a = UInt64(parts[0]), let b = UInt64(parts[1]), a <= b else { return nil }
        return a...b
    }

    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            done += n
        }
        return true
    }

    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot open folder \(path): errno \(errno)") }
        defer { _ = Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw Failure(description: "fsync of folder \(path) failed: errno \(errno)") }
    }
}

import Collective
import EventData
import Events
import Foundation

/// A user's history as the user tower reads it, built by absorbing events in time order; the
/// one implementation behind training examples, nightly user vectors and online updates.
public struct UserTowerState: Sendable {
    public let config: TwoTowerConfig
    private var long: [Float], longWeight: Float = 0
    private var hides: [Float], hideWeight: Float = 0
    private var short: [Float] = []  // the last `shortLength` engagement vectors, oldest first
    private var lastTime: Int64? = nil, lastEngagement: Int64? = nil
    /// Engagements absorbed so far.
    public private(set) var engagements = 0

    public init(config: TwoTowerConfig) {
        self.config = config
        long = [Float](repeating: 0, count: config.d)
        hides = long
    }

    /// Weight of an event type in the engagement mean (0: not an engagement).
    public static func engagementWeight(_ type: UInt8) -> Float {
        switch EventType(rawValue: type) {
        case .save: 1
        case .closeup, .click: 0.5
        default: 0
        }
    }

    /// Whether the tower reads events of `type` (engagements and hides).
    public static func reads(_ type: UInt8) -> Bool {
        engagementWeight(type) > 0 || type == EventType.hide.rawValue
    }

    /// Absorbs one event at `time` (ms, not before the previous one) on a pin with vector
    /// `vector` (d). Impressions are ignored.
    public mutating func absorb(vector: ArraySlice<Float>, type: UInt8, time: Int64) {
        let d = config.d
        precondition(vector.count == d, "UserTowerState: vector of width \(vector.count), expected \(d)")
        let isHide = type == EventType.hide.rawValue
        let w = Self.engagementWeight(type)
        guard w > 0 || isHide else { return }
        if let last = lastTime, time > last {
            let decay = Float(exp2(-Double(time - last) / (config.halfLifeHours * 3_600_000)))
            for j in 0..<d {
                long[j] *= decay
                hides[j] *= decay
            }
            longWeight *= decay
            hideWeight *= decay
        }
        lastTime = max(lastTime ?? time, time)
        let base = vector.startIndex
        if isHide {
            for j in 0..<d { hides[j] += vector[base + j] }
            hideWeight += 1
            return
        }
        for j in 0..<d { long[j] += w * vector[base + j] }
        longWeight += w
        short += vector
        if short.count > config.shortLength * d { short.removeFirst(d) }
        engagements += 1
        lastEngagement = time
    }

    /// The decayed mean of the engagements' vectors (d; zeros before any engagement).
    public var longTermMean: [Float] { long.map { longWeight > 0 ? $0 / longWeight : 0 } }

    /// The mean of the last `shortLength` engagements' vectors (d; zeros before any).
    public var shortTermMean: [Float] {
        let d = config.d, n = short.count / max(d, 1)
        return (0..<d).map { j in n > 0 ? (0..<n).reduce(Float(0)) { $0 + short[$1 * d + j] } / Float(n) : 0 }
    }

    /// Appends the tower's input row (`config.inputWidth`) for a request at `time` (ms) by a
    /// user with `profile` (nil: unknown) to `out`.
    public func encode(at time: Int64, profile: UserProfile?, into out: inout [Float]) {
        let d = config.d
        for j in 0..<d { out.append(longWeight > 0 ? long[j] / longWeight : 0) }
        let n = short.count / d
        for j in 0..<d {
            var s: Float = 0
            for r in 0..<n { s += short[r * d + j] }
            out.append(n > 0 ? s / Float(n) : 0)
        }
        for j in 0..<d { out.append(hideWeight > 0 ? hides[j] / hideWeight : 0) }
        var country = [Float](repeating: 0, count: config.countryBuckets)
        if let c = profile?.country, c >= 0 {
            country[Int(Sharding.hash(Int64(c)) % UInt64(config.countryBuckets))] = 1
        }
        out += country
        var device = [Float](repeating: 0, count: Device.allCases.count)
        if let v = profile?.device, Int(v) < device.count { device[Int(v)] = 1 }
        out += device
        out.append(Float(log1p(Double(engagements)) / log(1001.0)))
        let hours = lastEngagement.map { Double(max(0, time - $0)) / 3_600_000 } ?? 24 * 30
        out.append(Float(min(1, log1p(hours) / log1p(24 * 30))))
    }
}

/// Training examples of the two-tower model on this rank: one per (user, pin) first engaged
/// (closeup or save, `targetTypes`) before the cut, the user's input encoded from the events
/// strictly before it (point in time). A pin's later save is not a second example: its
/// closeup would already be in the history.
public struct TwoTowerExamples: Sendable {
    /// Encoded inputs (n × inputWidth), target pins (n), their vectors (n × d), log of each
    /// target's share of all examples (n), and a key per example (its group in each epoch).
    public var inputs: [Float] = [], pins: [Int64] = [], targets: [Float] = [], logQ: [Float] = []
    public var keys: [UInt64] = []
    public var count: Int { pins.count }

    public init() {}

    /// Builds this rank's examples from its `users` (collective: users are processed in rounds
    /// of `batchUsers`, the pins' vectors fetched from their holders each round).
    ///
    /// - Parameters:
    ///   - perUser: at most this many examples per user (the most recent).
    public static func build(
        users: [UserEvents], profiles: [Int64: UserProfile], vectors: PinVectorTable, config: TwoTowerConfig,
        before cut: Int64, targetTypes: Set<UInt8> = [EventType.closeup.rawValue, EventType.save.rawValue],
        perUser: Int = 100, batchUsers: Int = 256, comm: Communicator
    ) throws -> TwoTowerExamples {
        var out = TwoTowerExamples()
        let w = config.inputWidth, d = config.d
        try UserHistoryRounds.run(users: users, before: cut, vectors: vectors, batchUsers: batchUsers, comm: comm) {
            user, row, table in
            var first = Set<Int64>()
            var chosen: [Int] = []
            for i in user.pins.indices where user.times[i] < cut && targetTypes.contains(user.types[i]) {
                if first.insert(user.pins[i]).inserted, row[user.pins[i]] != nil { chosen.append(i) }
            }
            let keep = Set(chosen.suffix(perUser))
            var state = UserTowerState(config: config)
            var i = 0
            while i < user.pins.count, user.times[i] < cut {
                // Every event at this instant is predicted before any of them is absorbed.
                var j = i
                while j < user.pins.count, user.times[j] == user.times[i] { j += 1 }
                for e in i..<j where keep.contains(e) {
                    let r = row[user.pins[e]]!
                    state.encode(at: user.times[e], profile: profiles[user.user], into: &out.inputs)
                    out.pins.append(user.pins[e])
                    out.targets += table[r * d..<(r + 1) * d]
                    out.keys.append(
                        Sharding.hash(user.user ^ Int64(bitPattern: Sharding.hash(user.times[e] ^ user.pins[e]))))
                }
                for e in i..<j where UserTowerState.reads(user.types[e]) {
                    if let r = row[user.pins[e]] {
                        state.absorb(vector: table[r * d..<(r + 1) * d], type: user.types[e], time: user.times[e])
                    }
                }
                i = j
            }
        }
        precondition(out.inputs.count == out.count * w)
        // logQ: each target's share of all ranks' examples (counts summed by the pins' owners).
        let counts = try globalCounts(out.pins, comm: comm)
        let total = Double(try comm.allreduce(Int64(out.count)))
        out.logQ = counts.map { Float(log(Double($0) / max(total, 1))) }
        return out
    }

    /// For each of `pins` (this rank's list, repeats allowed), how often it occurs in every
    /// rank's list together: the occurrences go to the pins' owners, which answer. Collective.
    public static func globalCounts(_ pins: [Int64], comm: Communicator) throws -> [Int64] {
        let p = comm.size
        var outgoing = [[Int64]](repeating: [], count: p), slot: [(rank: Int, at: Int)] = []
        for pin in pins {
            let r = Sharding.owner(pin, ranks: p)
            slot.append((r, outgoing[r].count))
            outgoing[r].append(pin)
        }
        let (received, counts) = try comm.alltoallv(outgoing.flatMap { $0 }, sendCounts: outgoing.map(\.count))
        var tally: [Int64: Int64] = [:]
        for pin in received { tally[pin, default: 0] += 1 }
        let answers = try comm.alltoallv(received.map { tally[$0]! }, sendCounts: counts)
        var start = [Int](repeating: 0, count: p)
        for r in 1..<max(p, 1) { start[r] = start[r - 1] + answers.counts[r - 1] }
        return slot.map { answers.values[start[$0.rank] + $0.at] }
    }
}

/// Users processed in rounds for the user tower: each round, every rank fetches the vectors of
/// the pins its round's users read before `cut` from the ranks that hold them, then visits each
/// user with (events, row of each fetched pin, fetched vectors). Every rank runs the same number
/// of rounds (collective).
enum UserHistoryRounds {
    static func run(
        users: [UserEvents], before cut: Int64, vectors: PinVectorTable, batchUsers: Int, comm: Communicator,
        visit: (UserEvents, [Int64: Int], [Float]) throws -> Void
    ) throws {
        let rounds = Int(try comm.allreduce(Int64((users.count + batchUsers - 1) / batchUsers), op: .max))
        for round in 0..<rounds {
            let batch = users.dropFirst(round * batchUsers).prefix(batchUsers)
            var row: [Int64: Int] = [:], pins: [Int64] = []
            for u in batch {
                for i in u.pins.indices
                where u.times[i] < cut && UserTowerState.reads(u.types[i]) && row[u.pins[i]] == nil {
                    row[u.pins[i]] = pins.count
                    pins.append(u.pins[i])
                }
            }
            let fetched = try vectors.lookupDistinct(pins, comm: comm)
            for (i, pin) in pins.enumerated() where !fetched.known[i] { row[pin] = nil }  // no rank holds it
            for u in batch { try visit(u, row, fetched.vectors) }
        }
    }
}

import Artifacts
import Collective
import EventData
import Foundation

/// One user's events (time-ordered), as the rank holding the user's shard reads them.
public struct UserEvents: Sendable {
    public var user: Int64
    public var pins: [Int64] = [], types: [UInt8] = [], times: [Int64] = []
    /// Per event: its session, feed slot and surface (filled by `load(world:comm:)`; empty for
    /// events built by hand).
    public var sessions: [Int64] = [], positions: [Int32] = [], surfaces: [UInt8] = []

    /// A user with no events yet (append them in time order).
    public init(user: Int64) { self.user = user }

    /// Pins engaged with (closeup, click, save) strictly before `cut`, most recent last.
    public func engaged(before cut: Int64) -> [Int64] {
        let engagement: Set<UInt8> = [EventType.closeup.rawValue, EventType.click.rawValue, EventType.save.rawValue]
        return pins.indices.filter { times[$0] < cut && engagement.contains(types[$0]) }.map { pins[$0] }
    }

    /// Pins with any event (impressions included) strictly before `cut`: never shown again.
    public func seen(before cut: Int64) -> Set<Int64> {
        Set(pins.indices.filter { times[$0] < cut }.map { pins[$0] })
    }

    /// The pins a feed built at `cut` leaves out: those saved or hidden before `cut`, and those
    /// with any other event in the `days` days before it (nil: any time before it, `seen`).
    public func excluded(before cut: Int64, seenDays days: Int?) -> Set<Int64> {
        guard let days else { return seen(before: cut) }
        let since = cut == .max ? Int64.min : cut - Int64(days) * 86_400_000
        let kept: Set<UInt8> = [EventType.save.rawValue, EventType.hide.rawValue]
        return Set(
            pins.indices.filter { times[$0] < cut && (times[$0] >= since || kept.contains(types[$0])) }.map { pins[$0] }
        )
    }

    /// For every event: for an impression, the bit mask (`1 << EventType.rawValue`) of the
    /// engagements the user performed on the same pin in the same session at or after it,
    /// credited to the latest such impression only (as `ImpressionLabels`); 0 for other events.
    /// Needs `sessions`.
    public func impressionLabels() -> [UInt8] {
        precondition(sessions.count == pins.count, "impressionLabels needs the events' sessions")
        struct Key: Hashable { let session: Int64, pin: Int64 }
        var labels = [UInt8](repeating: 0, count: pins.count)
        var after: [Key: (mask: UInt8, first: Int64)] = [:]
        for i in pins.indices.reversed() {
            let k = Key(session: sessions[i], pin: pins[i])
            if types[i] == EventType.impression.rawValue {
                if let a = after[k], a.first >= times[i] {
                    labels[i] = a.mask
                    after[k] = nil
                }
            } else {
                let old = after[k]
                after[k] = ((old?.mask ?? 0) | UInt8(1) << types[i], min(old?.first ?? .max, times[i]))
            }
        }
        return labels
    }

    /// Delayed feedback: for every impression, the bit mask of the engagements the user
    /// performed on the same pin at or after it and at most `window` ms later, in any session
    /// (a save may come back days later), each credited to the latest impression of the pin
    /// before it only; 0 for other events. An impression just before a training cut thus gets
    /// the saves that arrive up to `window` after the cut, and no later ones.
    public func impressionLabels(joinWindow window: Int64) -> [UInt8] {
        precondition(window >= 0, "impressionLabels: negative join window")
        var labels = [UInt8](repeating: 0, count: pins.count)
        var after: [Int64: [(type: UInt8, time: Int64)]] = [:]  // per pin: engagements until its next impression
        for i in pins.indices.reversed() {
            if types[i] == EventType.impression.rawValue {
                for e in after[pins[i]] ?? [] where e.time >= times[i] && e.time - times[i] <= window {
                    labels[i] |= UInt8(1) << e.type
                }
                after[pins[i]] = nil
            } else {
                after[pins[i], default: []].append((types[i], times[i]))
            }
        }
        return labels
    }

    /// Pins saved at or after `cut` (the held-out saves of an evaluation).
    public func saved(from cut: Int64) -> Set<Int64> {
        Set(pins.indices.filter { times[$0] >= cut && types[$0] == EventType.save.rawValue }.map { pins[$0] })
    }

    /// The events of one `user` of `world`, in time order, on every rank (gathered from the rank
    /// that holds the user's shard). Collective.
    public static func load(user: Int64, world: DatasetReader, comm: Communicator) throws -> UserEvents {
        var pins: [Int64] = [], types: [Int64] = [], times: [Int64] = []
        for path in try world.myShards("events", comm: comm) {
            let t = try DatasetReader.readShard(path, entity: "events")
            let users = t.i64("user_id"), p = t.i64("pin_id"), ts = t.i64("timestamp_ms"), ty = t.uint8["event_type"]!
            for i in 0..<t.count where users[i] == user {
                pins.append(p[i]); types.append(Int64(ty[i])); times.append(ts[i])
            }
        }
        // A user's rows are in one shard: concatenating over ranks keeps them in time order.
        let all = try comm.allgatherv(pins + types + times)
        var e = UserEvents(user: user)
        var offset = 0
        for count in all.counts {
            let m = count / 3
            e.pins += all.values[offset..<offset + m]
            e.types += all.values[offset + m..<offset + 2 * m].map { UInt8($0) }
            e.times += all.values[offset + 2 * m..<offset + count]
            offset += count
        }
        return e
    }

    /// This rank's users of `world`, by user id. Collective. When the run was written by as
    /// many ranks as read it, each rank keeps the users of its own event shard; otherwise the
    /// shards' rows are routed to the users' owners (`Sharding.owner`), so every rank holds
    /// about 1/size of the users whatever the writer's rank count.
    public static func load(world: DatasetReader, comm: Communicator) throws -> [UserEvents] {
        var byUser: [Int64: UserEvents] = [:]
        for t in try ownedRows(of: .events, world: world, comm: comm) {
            let users = t.i64("user_id"), p = t.i64("pin_id"), ts = t.i64("timestamp_ms"), ty = t.uint8["event_type"]!
            let session = t.i64("session_id"), position = t.int32["position"]!, surface = t.uint8["surface"]!
            for i in 0..<t.count {
                byUser[users[i], default: UserEvents(user: users[i])].pins.append(p[i])
                byUser[users[i]]!.types.append(ty[i])
                byUser[users[i]]!.times.append(ts[i])
                byUser[users[i]]!.sessions.append(session[i])
                byUser[users[i]]!.positions.append(position[i])
                byUser[users[i]]!.surfaces.append(surface[i])
            }
        }
        return byUser.keys.sorted().map { u in
            var e = byUser[u]!
            let order = e.times.indices.sorted { (e.times[$0], $0) < (e.times[$1], $1) }
            e.pins = order.map { e.pins[$0] }; e.types = order.map { e.types[$0] }; e.times = order.map { e.times[$0] }
            e.sessions = order.map { e.sessions[$0] }; e.positions = order.map { e.positions[$0] }
            e.surfaces = order.map { e.surfaces[$0] }
            return e
        }
    }
}

extension UserEvents {
    /// This rank's rows of a user-sharded `entity` of `world`: the rank's own shards when the
    /// run was written by as many ranks as read it, otherwise every shard's rows routed to the
    /// users' owners (`Sharding.owner` of `user_id`). Collective.
    static func ownedRows(of entity: EntitySchema, world: DatasetReader, comm: Communicator) throws -> [Table] {
        var tables: [Table] = []
        for path in try world.myShards(entity.name, comm: comm) {
            tables.append(try DatasetReader.readShard(path, entity: entity.name))
        }
        guard try world.shards(entity.name).count != comm.size else { return tables }
        var mine = Table(schema: entity)
        for t in tables { mine.append(t) }
        let owners = mine.i64("user_id").map { Sharding.owner($0, ranks: comm.size) }
        return [try mine.route(to: owners, comm: comm)]
    }
}

/// What the dataset knows about a user besides events: country code and device.
public struct UserProfile: Sendable, Equatable {
    public var country: Int32
    public var device: UInt8
    public init(country: Int32, device: UInt8) {
        self.country = country
        self.device = device
    }
}

extension UserProfile {
    /// The profiles of this rank's users of `world` (the users `UserEvents.load` gives this
    /// rank: `Sharding.owner`, or the rank's own shard when the writer had as many ranks).
    /// Collective.
    public static func load(world: DatasetReader, comm: Communicator) throws -> [Int64: UserProfile] {
        var out: [Int64: UserProfile] = [:]
        for t in try UserEvents.ownedRows(of: .users, world: world, comm: comm) {
            let users = t.i64("user_id"), country = t.int32["country"]!, device = t.uint8["device"]!
            for i in 0..<t.count { out[users[i]] = UserProfile(country: country[i], device: device[i]) }
        }
        return out
    }
}

extension UserEvents {
    /// The cut of an evaluation that holds out the last `days` days: the latest event of any
    /// rank's `users` minus `days` days (`Int64.max` when `days` is 0: every event is history).
    /// Collective.
    public static func cut(holdoutDays days: Int, users: [UserEvents], comm: Communicator) throws -> Int64 {
        days > 0 ? try latest(users, comm: comm) - Int64(days) * 86_400_000 : Int64.max
    }

    /// The cut that holds out the last `days` days of `world`'s events (`Int64.max` when `days`
    /// is 0), the same as `cut(holdoutDays:users:comm:)` over every user's events, but reading
    /// only their timestamps (`latest(world:comm:)`). Collective.
    public static func cut(holdoutDays days: Int, world: DatasetReader, comm: Communicator) throws -> Int64 {
        days > 0 ? try latest(world: world, comm: comm) - Int64(days) * 86_400_000 : Int64.max
    }

    /// The time of the latest event of `world` (`Int64.min` if none): each rank reads the
    /// `timestamp_ms` column of its events shards (`myShards`) in blocks of `blockRows` rows,
    /// nothing else. Memory: one block. Collective.
    public static func latest(world: DatasetReader, blockRows: Int = 1 << 20, comm: Communicator) throws -> Int64 {
        var latest = Int64.min
        for path in try world.myShards(EntitySchema.events.name, comm: comm) {
            let file = try H5File(path: path, mode: .read)
            let v = try file.root.intAttribute("schema_version")
            guard v == EntitySchema.version else {
                throw ArtifactError(
                    file: path, object: "/", message: "schema_version \(v), this build reads \(EntitySchema.version)")
            }
            let times = try file.root.group(EntitySchema.events.name).dataset("timestamp_ms")
            let n = times.rowCount
            var at = 0
            while at < n {
                let block = try times.readRows(at..<Swift.min(n, at + blockRows), as: Int64.self)
                latest = Swift.max(latest, block.max() ?? .min)
                at += blockRows
            }
        }
        return try comm.allreduce(latest, op: .max)
    }

    /// The time of the latest event of any rank's `users` (`Int64.min` if none). Collective.
    public static func latest(_ users: [UserEvents], comm: Communicator) throws -> Int64 {
        try comm.allreduce(users.map { $0.times.last ?? .min }.max() ?? .min, op: .max)
    }
}

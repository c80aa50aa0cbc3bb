import Collective
import EventData
import Events
import Foundation

/// The trending channel: per category, the pins with the highest smoothed engagement rate among
/// the pins shown in the `days` days before the cut,
///     rate = (saves + c · closeups + m · (s + c · p)) / (impressions + m),
/// where s and p are the global save and closeup rates and c = w · s / p (closeups weighted `w`
/// times the saves' total mass; w = 0 is the smoothed save rate), so a pin shown often and engaged
/// often leads, and a pin shown twice and saved once does not.
/// A user's candidates come from the categories they engaged with, slots in proportion to
/// their engagement (largest remainder), best rate first; seen pins left out.
///
/// Build: each rank counts its users' impressions and saves per pin, sends them to the pin's
/// owner (pin mod ranks), owners look up the categories (`ContentChannel.lookupDistinct`) and
/// keep each category's best `perCategory`; the owners' lists are allgathered and merged.
/// Every rank then holds the same `categories × perCategory` table; its memory never holds the
/// whole catalogue. Same result on any rank count (integer counts; ties to the smaller id).
public struct TrendingChannel: Sendable {
    /// Category → its best pins, best first.
    public let byCategory: [Int32: [Int64]]
    /// The best pins over all categories, best first: the cold-start list of a user who has
    /// engaged with nothing yet and whose country is unknown.
    public let overall: [Int64]
    /// The cold-start lists by segment (`segment(country:)`, `segment(country:device:)`):
    /// rates counted over the events of that segment's users only.
    public let bySegment: [Int64: [Int64]]
    /// The global save rate before the cut (the prior).
    public let prior: Double
    /// The closeups' weight in the rate: 10 × the saves' total mass, chosen on the validation world
    /// (seed 43: the channel's expected saves per user 0.792 with saves only, 0.805 / 0.821 /
    /// 0.825 at 1 / 3 / 10; docs/retrieval.md). Closeups are about five times as frequent as
    /// saves and follow the same quality, so they sharpen the estimate of a rarely shown pin.
    public static let defaultCloseupWeight = 10.0

    public init(byCategory: [Int32: [Int64]], overall: [Int64] = [], bySegment: [Int64: [Int64]] = [:], prior: Double) {
        self.byCategory = byCategory
        self.overall = overall
        self.bySegment = bySegment
        self.prior = prior
    }

    /// The segment key of the users of a country, and of a country and device (`AudienceSegment`).
    public static func segment(country: Int32) -> Int64 { AudienceSegment.key(country: country) }
    public static func segment(country: Int32, device: UInt8) -> Int64 {
        AudienceSegment.key(country: country, device: device)
    }

    /// Collective: builds the tables from every rank's `users` (events strictly before `cut`
    /// and at or after `cut − days`); with `profiles` (this rank's users' countries and
    /// devices), also the cold-start lists per country and per (country, device).
    public static func build(
        users: [UserEvents], profiles: [Int64: UserProfile] = [:], cut: Int64, days: Int, perCategory: Int,
        smoothing m: Double = 20, content: ContentChannel, comm: Communicator
    ) throws -> TrendingChannel {
        try build(
            users: users, profiles: profiles, cut: cut, days: days, perCategory: perCategory, smoothing: m,
            categoriesOf: { try content.lookupDistinct($0, comm: comm).categories }, comm: comm)
    }

    /// The same with the pins' categories from `categoriesOf` (collective: every rank calls it
    /// once with the pins it owns; −1 unknown).
    public static func build(
        users: [UserEvents], profiles: [Int64: UserProfile] = [:], cut: Int64, days: Int, perCategory: Int,
        smoothing m: Double = 20, closeupWeight: Double = TrendingChannel.defaultCloseupWeight,
        categoriesOf: ([Int64]) throws -> [Int32], comm: Communicator
    ) throws -> TrendingChannel {
        let from = days > 0 && cut != .max ? cut - Int64(days) * 86_400_000 : Int64.min
        struct Key: Hashable { var pin: Int64, segment: Int64 }
        var counts: [Key: (shown: Int64, saved: Int64, closed: Int64)] = [:]
        for u in users {
            var segments: [Int64] = [-1]
            if let p = profiles[u.user] {
                segments += [segment(country: p.country), segment(country: p.country, device: p.device)]
            }
            for i in u.pins.indices where u.times[i] < cut && u.times[i] >= from {
                let shown = u.types[i] == EventType.impression.rawValue, saved = u.types[i] == EventType.save.rawValue
                let closed = u.types[i] == EventType.closeup.rawValue
                guard shown || saved || closed else { continue }
                for s in segments {
                    counts[Key(pin: u.pins[i], segment: s), default: (0, 0, 0)].shown += shown ? 1 : 0
                    counts[Key(pin: u.pins[i], segment: s)]!.saved += saved ? 1 : 0
                    counts[Key(pin: u.pins[i], segment: s)]!.closed += closed ? 1 : 0
                }
            }
        }
        var outgoing = [[Int64]](repeating: [], count: comm.size)
        for (key, c) in counts {
            outgoing[Int(key.pin.magnitude % UInt64(comm.size))] += [key.pin, key.segment, c.shown, c.saved, c.closed]
        }
        let (received, _) = try comm.alltoallv(outgoing.flatMap { $0 }, sendCounts: outgoing.map(\.count))
        var owned: [Key: (shown: Int64, saved: Int64, closed: Int64)] = [:]
        for i in stride(from: 0, to: received.count, by: 5) {
            let key = Key(pin: received[i], segment: received[i + 1])
            owned[key, default: (0, 0, 0)].shown += received[i + 2]
            owned[key]!.saved += received[i + 3]
            owned[key]!.closed += received[i + 4]
        }
        let everyone = owned.filter { $0.key.segment == -1 }.values
        var totals = [
            everyone.reduce(0) { $0 + $1.shown }, everyone.reduce(0) { $0 + $1.saved },
            everyone.reduce(0) { $0 + $1.closed },
        ]
        try comm.allreduce(&totals)
        let prior = totals[0] > 0 ? Double(totals[1]) / Double(totals[0]) : 0
        let closeupPrior = totals[0] > 0 ? Double(totals[2]) / Double(totals[0]) : 0
        // Closeups weighted to carry as much total mass as the saves (c · closeups ≈ w · saves).
        let c = closeupPrior > 0 ? closeupWeight * prior / closeupPrior : 0
        let pins = Set(owned.keys.map(\.pin)).sorted()
        let categories = try categoriesOf(pins)
        let category = Dictionary(uniqueKeysWithValues: zip(pins, categories))
        func rate(_ n: (shown: Int64, saved: Int64, closed: Int64)) -> Double {
            (Double(n.saved) + c * Double(n.closed) + m * (prior + c * closeupPrior)) / (Double(n.shown) + m)
        }
        // Tables: a category (key ≥ 0, everyone's counts) or a segment (its users' counts).
        var local: [Int64: [(pin: Int64, rate: Double)]] = [:]
        for (key, c) in owned {
            let table = key.segment == -1 ? Int64(category[key.pin] ?? -1) : key.segment
            if table >= 0 { local[table, default: []].append((key.pin, rate(c))) }
        }
        // Each owner's best per table, as (table, pin, rate bits) triples.
        var mine: [Int64] = []
        for (table, list) in local {
            for e in best(list, perCategory) { mine += [table, e.pin, Int64(bitPattern: e.rate.bitPattern)] }
        }
        let (all, _) = try comm.allgatherv(mine)
        var merged: [Int64: [(pin: Int64, rate: Double)]] = [:]
        for i in stride(from: 0, to: all.count, by: 3) {
            merged[all[i], default: []].append((all[i + 1], Double(bitPattern: UInt64(bitPattern: all[i + 2]))))
        }
        var byCategory: [Int32: [Int64]] = [:], bySegment: [Int64: [Int64]] = [:]
        for (table, list) in merged {
            if table < 1 << 40 {
                byCategory[Int32(table)] = best(list, perCategory).map(\.pin)
            } else {
                bySegment[table] = best(list, perCategory).map(\.pin)
            }
        }
        let categoryEntries = merged.filter { $0.key < 1 << 40 }.values.flatMap { $0 }
        return TrendingChannel(
            byCategory: byCategory, overall: best(categoryEntries, perCategory).map(\.pin), bySegment: bySegment,
            prior: prior)
    }

    static func best(_ list: [(pin: Int64, rate: Double)], _ n: Int) -> [(pin: Int64, rate: Double)] {
        Array(list.sorted { ($0.rate, -$0.pin) > ($1.rate, -$1.pin) }.prefix(n))
    }

    /// Up to `k` candidates for a user who engaged with `categories` (one entry per engaged
    /// pin, most recent last; −1 = unknown): slots in proportion to each category's count,
    /// filled round-robin, best rate first; `exclude` and duplicates left out. A user with no
    /// known category (cold start) gets the best pins among the users of the same country and
    /// device, topped up from the same country, then from everyone.
    public func candidates(
        engagedCategories categories: [Int32], k: Int, exclude: Set<Int64>, profile: UserProfile? = nil
    ) -> [Int64] {
        var count: [Int32: Int] = [:]
        for c in categories where c >= 0 { count[c, default: 0] += 1 }
        if count.isEmpty {
            return AudienceSegment.feed(country: profile?.country, device: profile?.device, k: k, exclude: exclude) {
                $0 == AudienceSegment.everyone ? overall : bySegment[$0]
            }
        }
        let order = count.sorted { ($0.value, -$0.key) > ($1.value, -$1.key) }
        let lists = order.map { (byCategory[$0.key] ?? []).map { (pin: $0, distance: Float(0)) } }
        return ContentChannel.interleave(lists: lists, engagement: order.map(\.value), k: k, exclude: exclude)
            .map(\.pin)
    }
}

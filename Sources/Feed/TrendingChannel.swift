import Collective
import EventData
import Events
import Foundation

/// The trending channel: per category, the pins with the highest smoothed save rate among the
/// pins shown in the `days` days before the cut,
///     rate = (saves + m · prior) / (impressions + m),   prior = the global save rate,
/// so a pin shown often and saved often leads, and a pin shown twice and saved once does not.
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
    /// engaged with nothing yet.
    public let overall: [Int64]
    /// The global save rate before the cut (the prior).
    public let prior: Double

    public init(byCategory: [Int32: [Int64]], overall: [Int64] = [], prior: Double) {
        self.byCategory = byCategory
        self.overall = overall
        self.prior = prior
    }

    /// Collective: builds the table from every rank's `users` (events strictly before `cut`
    /// and at or after `cut − days`).
    public static func build(
        users: [UserEvents], cut: Int64, days: Int, perCategory: Int, smoothing m: Double = 20,
        content: ContentChannel, comm: Communicator
    ) throws -> TrendingChannel {
        let from = days > 0 && cut != .max ? cut - Int64(days) * 86_400_000 : Int64.min
        var counts: [Int64: (shown: Int64, saved: Int64)] = [:]
        for u in users {
            for i in u.pins.indices where u.times[i] < cut && u.times[i] >= from {
                if u.types[i] == EventType.impression.rawValue { counts[u.pins[i], default: (0, 0)].shown += 1 }
                if u.types[i] == EventType.save.rawValue { counts[u.pins[i], default: (0, 0)].saved += 1 }
            }
        }
        var outgoing = [[Int64]](repeating: [], count: comm.size)
        for (pin, c) in counts { outgoing[Int(pin.magnitude % UInt64(comm.size))] += [pin, c.shown, c.saved] }
        let (received, _) = try comm.alltoallv(outgoing.flatMap { $0 }, sendCounts: outgoing.map(\.count))
        var owned: [Int64: (shown: Int64, saved: Int64)] = [:]
        for i in stride(from: 0, to: received.count, by: 3) {
            owned[received[i], default: (0, 0)].shown += received[i + 1]
            owned[received[i]]!.saved += received[i + 2]
        }
        var totals = [owned.values.reduce(0) { $0 + $1.shown }, owned.values.reduce(0) { $0 + $1.saved }]
        try comm.allreduce(&totals)
        let prior = totals[0] > 0 ? Double(totals[1]) / Double(totals[0]) : 0
        let pins = owned.keys.sorted()
        let categories = try content.lookupDistinct(pins, comm: comm).categories
        func rate(_ c: (shown: Int64, saved: Int64)) -> Double { (Double(c.saved) + m * prior) / (Double(c.shown) + m) }
        var local: [Int32: [(pin: Int64, rate: Double)]] = [:]
        for (pin, category) in zip(pins, categories) where category >= 0 {
            local[category, default: []].append((pin, rate(owned[pin]!)))
        }
        // Each owner's best per category, as (category, pin, rate bits) triples.
        var mine: [Int64] = []
        for (category, list) in local {
            for e in best(list, perCategory) { mine += [Int64(category), e.pin, Int64(bitPattern: e.rate.bitPattern)] }
        }
        let (all, _) = try comm.allgatherv(mine)
        var merged: [Int32: [(pin: Int64, rate: Double)]] = [:]
        for i in stride(from: 0, to: all.count, by: 3) {
            merged[Int32(all[i]), default: []].append((all[i + 1], Double(bitPattern: UInt64(bitPattern: all[i + 2]))))
        }
        return TrendingChannel(
            byCategory: merged.mapValues { best($0, perCategory).map(\.pin) },
            overall: best(merged.values.flatMap { $0 }, perCategory).map(\.pin), prior: prior)
    }

    static func best(_ list: [(pin: Int64, rate: Double)], _ n: Int) -> [(pin: Int64, rate: Double)] {
        Array(list.sorted { ($0.rate, -$0.pin) > ($1.rate, -$1.pin) }.prefix(n))
    }

    /// Up to `k` candidates for a user who engaged with `categories` (one entry per engaged
    /// pin, most recent last; −1 = unknown): slots in proportion to each category's count,
    /// filled round-robin, best rate first; `exclude` and duplicates left out. A user with no
    /// known category (cold start) gets the best pins overall.
    public func candidates(engagedCategories categories: [Int32], k: Int, exclude: Set<Int64>) -> [Int64] {
        var count: [Int32: Int] = [:]
        for c in categories where c >= 0 { count[c, default: 0] += 1 }
        if count.isEmpty { return Array(overall.lazy.filter { !exclude.contains($0) }.prefix(k)) }
        let order = count.sorted { ($0.value, -$0.key) > ($1.value, -$1.key) }
        let lists = order.map { (byCategory[$0.key] ?? []).map { (pin: $0, distance: Float(0)) } }
        return ContentChannel.interleave(lists: lists, engagement: order.map(\.value), k: k, exclude: exclude)
            .map(\.pin)
    }
}

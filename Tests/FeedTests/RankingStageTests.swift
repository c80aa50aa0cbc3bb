import Collective
import EventData
import Events
import Feed
import Foundation
import Models
import Ranking
import Testing

@Suite("The feed's ranking stage: features, point-in-time rows, pin statistics")
struct RankingStageTests {
    @Test("FeedFeatures: ids, smoothed rates, cosines and category share as documented")
    func features() {
        var data = FeedFeatures.emptyData(contentWidth: 2)
        var user = FeedFeatures.User()
        user.country = 7
        user.device = 1
        user.engagements = 4
        user.categoryCounts = [3: 1, 5: 3]
        user.towerVector = [1, 0]
        user.longTerm = [0, 2]
        let day: Int64 = 86_400_000
        let pin = FeedFeatures.Pin(
            category: 5, createdAt: 0, vector: [3, 4][...],
            stats: FeedFeatures.PinStats(impressions: 80, closeups: 10, saves: 2))
        FeedFeatures.append(
            user: user, pin: pin, surface: 0, time: 2 * day + 3 * 3_600_000,
            prior: FeedFeatures.Prior(closeup: 0.1, save: 0.05), into: &data)
        #expect(data.ids == [5, 0, 1, 7, 3])
        let x = data.dense
        #expect(abs(x[0] - Float(log1p(2.125))) < 1e-5)
        #expect(abs(x[1] - Float(log1p(4.0))) < 1e-6 && abs(x[2] - Float(log1p(80.0))) < 1e-6)
        #expect(abs(x[3] - 12.0 / 100) < 1e-6, "(10 + 20 · 0.1) / (80 + 20)")
        #expect(abs(x[4] - 3.0 / 100) < 1e-6, "(2 + 20 · 0.05) / (80 + 20)")
        #expect(abs(x[5] - 0.6) < 1e-6 && abs(x[6] - 0.8) < 1e-6 && x[7] == 0, "cosines with (3, 4)")
        #expect(x[8] == 0.75)
        #expect(data.content == [3, 4])
    }

    /// One user: session 1 shows pins 10 and 11 (10 is closed up and saved), session 2 shows 12.
    func oneUser() -> UserEvents {
        var u = UserEvents(user: 3)
        let rows: [(pin: Int64, type: EventType, time: Int64, session: Int64, position: Int32)] = [
            (10, .impression, 1_000, 1, 0), (11, .impression, 1_000, 1, 1), (10, .closeup, 5_000, 1, 0),
            (10, .save, 9_000, 1, 0), (12, .impression, 100_000, 2, 0),
        ]
        for r in rows {
            u.pins.append(r.pin)
            u.types.append(r.type.rawValue)
            u.times.append(r.time)
            u.sessions.append(r.session)
            u.positions.append(r.position)
            u.surfaces.append(0)
        }
        return u
    }

    func pins() -> PinFeatureTable {
        PinFeatureTable(
            ids: [10, 11, 12], vectors: [1, 0, 0, 1, 1, 1], d: 2, categories: [1, 2, 1], createdAt: [0, 0, 0],
            embeddingVersion: "test")
    }

    @Test("rows: one per impression, labels from the same session, features as of the request")
    func pointInTime() throws {
        let comm = try Communicator.world()
        let user = oneUser()
        let stats = try PinDailyStats.build(users: [user], before: .max, comm: comm)
        let (train, valid) = try RankingExamples.build(
            users: [user], profiles: [:], pins: pins(), stats: stats, tower: nil, before: 200_000, validDays: 0,
            comm: comm)
        #expect(train.count == 3 && valid.count == 0)
        // Rows are in key order; find them by their content (the pin's vector).
        var byPin: [Int64: Int] = [:]
        for i in 0..<train.count {
            let v = Array(train.content[i * 2..<(i + 1) * 2])
            byPin[v == [1, 0] ? 10 : v == [0, 1] ? 11 : 12] = i
        }
        let w = FeedFeatures.denseNames.count
        func dense(_ pin: Int64) -> [Float] { Array(train.dense[byPin[pin]! * w..<(byPin[pin]! + 1) * w]) }
        #expect(train.labels[0][byPin[10]!] == 1 && train.labels[1][byPin[10]!] == 1, "pin 10 saved and closed up")
        #expect(train.labels[0][byPin[11]!] == 0 && train.labels[0][byPin[12]!] == 0)
        #expect(dense(11)[1] == 0 && dense(11)[8] == 0, "session 1's own engagement is not in its rows")
        #expect(dense(12)[1] == Float(log1p(2.0)), "session 2 sees the closeup and the save")
        #expect(dense(12)[8] == 1, "both engagements were in pin 12's category")
        #expect(train.positions[byPin[11]!] == 1)
    }

    @Test("pin statistics count every user's events before the request's day")
    func pinStats() throws {
        let comm = try Communicator.world()
        var u = oneUser()
        let day: Int64 = 86_400_000
        u.times = [1_000, 1_000, 5_000, 9_000, day + 5]
        let stats = try PinDailyStats.build(users: [u], before: .max, comm: comm)
        let s = try stats.lookup([10, 10, 12], days: [0, 1, 2], comm: comm)
        #expect(s[0] == FeedFeatures.PinStats(), "nothing before day 0")
        #expect(s[1] == FeedFeatures.PinStats(impressions: 1, closeups: 1, saves: 1))
        #expect(s[2] == FeedFeatures.PinStats(impressions: 1, closeups: 0, saves: 0))
        #expect(abs(stats.prior.save - 1.0 / 3) < 1e-9 && abs(stats.prior.closeup - 1.0 / 3) < 1e-9)
    }
}

@Suite("Fresh slots in the feed")
struct FreshSlotTests {
    @Test("the best fresh candidates take evenly spaced slots; a feed with enough fresh pins is kept")
    func freshSlots() {
        let feed = Array(0..<10)
        // Candidates 20 and 21 are fresh (best first); 3 is fresh and already in the feed.
        #expect(
            FeedRanking.withFreshSlots(feed, fresh: [20, 21], slots: 2, k: 10) == [0, 1, 2, 20, 3, 4, 21, 5, 6, 7])
        #expect(
            FeedRanking.withFreshSlots(feed, fresh: [3, 20, 21], slots: 2, k: 10) == [0, 1, 2, 3, 4, 20, 5, 6, 7, 8])
        #expect(FeedRanking.withFreshSlots(feed, fresh: [3], slots: 1, k: 10) == feed)
        #expect(FeedRanking.withFreshSlots([0, 1], fresh: [9], slots: 1, k: 10) == [0, 1, 9], "a short feed grows")
    }
}

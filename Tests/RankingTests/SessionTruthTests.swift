import Collective
import EventData
import Events
import Foundation
import Learning
import Linalg
import Ranking
import Serving
import Testing
import _TestSupport

/// The serving shard's online re-scoring judged by the synthetic world's true model: a user's
/// candidates from the world (their categories and PinSage-like content vectors), ranked by a
/// ranker, served by `FeedService`; the feed's expected saves are computed with the world's
/// true outcome probabilities given the session's topic
/// (`WorldGenerator.outcomeProbabilities(_:pin:position:sessionTopic:)`).
@Suite("Online re-scoring under the world's truth")
struct SessionTruthTests {
    static let candidates = 960
    static let k = 20

    /// Rows whose saves follow the category share and the cosine of the pin with the user's
    /// recent engagements (the signal a session's saves move), with content width `d`.
    static func sessionRows(n: Int, seed: UInt64, d: Int) -> CTRData {
        var r = RandomStream(seed: seed)
        var data = FeedFeatures.emptyData(contentWidth: d)
        var save: [Float] = [], closeup: [Float] = []
        for _ in 0..<n {
            var user = FeedFeatures.User()
            user.engagements = 5 + r.int(below: 20)
            let category = Int32(r.int(below: 96))
            let inCategory = r.int(below: user.engagements + 1)
            user.categoryCounts = [category: inCategory]
            let recent = (0..<d).map { _ in Float(r.normal()) }
            user.shortTerm = recent
            let a = Float(2 * r.uniform() - 1)
            let vector = recent.map { a * $0 + 0.5 * Float(r.normal()) }
            FeedFeatures.append(
                user: user,
                pin: FeedFeatures.Pin(category: category, createdAt: 0, vector: vector[...], stats: .init()),
                surface: 0, time: 3_600_000, prior: FeedFeatures.Prior(closeup: 0.1, save: 0.05), into: &data)
            let share = Double(inCategory) / Double(user.engagements)
            let cos = Double(data.dense[data.dense.count - 2])
            let p = 0.05 + 0.45 * share + 0.45 * max(0, cos)
            save.append(r.uniform() < p ? 1 : 0)
            closeup.append(r.uniform() < min(1, 1.5 * p) ? 1 : 0)
        }
        data.labels = [save, closeup]
        return data
    }

    struct Setup {
        var world: WorldGenerator
        var truth: WorldGenerator.UserTruth
        var store: FeedStore
        var topicOf: (Int64) -> Int
    }

    /// User 3 of a default world: the world's first 960 pins (40 per topic) as candidates, features from the
    /// user's long-term interests (category counts, long- and short-term means of the interest
    /// topics' pins), ranked by a ranker trained on `sessionRows`; the feed is the top 50.
    static func setup() throws -> Setup {
        var p = WorldParameters()
        p.users = 50
        p.initialPins = 2_000
        let world = WorldGenerator(p)
        let d = p.dimension
        let user = 3
        let truth = world.truth(ofUser: user)
        let table = world.pins(Array(0..<candidates))
        let ids = table.i64("pin_id"), cats = table.int32["category"]!, emb = table.float32["embedding"]!

        var c = OnlineRankerTests.config()
        c.contentWidth = d
        let dir = try MPIRun.temporaryDirectory("session-truth")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("ranker.h5").path
        var options = RankerTrainingOptions()
        options.epochs = 6
        options.batchSize = 256
        options.learningRate = 3e-3
        _ = try RankerTrainer.train(
            config: c, train: sessionRows(n: 8_000, seed: 1, d: d), valid: sessionRows(n: 1_000, seed: 2, d: d),
            options: options, comm: try Communicator.world(), save: path)
        let ranker = try OnlineRanker(path: path)

        var u = FeedFeatures.User()
        u.engagements = 20
        var mean = [Float](repeating: 0, count: d)
        for (topic, w) in zip(truth.interests, truth.weights) {
            let n = Int((20 * w).rounded())
            for j in 0..<n {
                u.categoryCounts[Int32(topic * p.categoriesPerTopic + j % p.categoriesPerTopic), default: 0] += 1
            }
            for i in 0..<candidates where world.topic(ofPin: i) == topic {
                for q in 0..<d { mean[q] += Float(w) * emb[i * d + q] }
            }
        }
        u.longTerm = mean
        u.shortTerm = mean
        var data = FeedFeatures.emptyData(contentWidth: d)
        for i in 0..<candidates {
            FeedFeatures.append(
                user: u,
                pin: FeedFeatures.Pin(
                    category: cats[i], createdAt: 0, vector: emb[i * d..<(i + 1) * d], stats: .init()),
                surface: 0, time: 3_600_000, prior: FeedFeatures.Prior(closeup: 0.1, save: 0.05), into: &data)
        }
        let scores = try ranker.score(data)
        let order = (0..<candidates).sorted { (scores[$0].score, -$0) > (scores[$1].score, -$1) }
        var stored = StoredFeatures(contentWidth: d)
        let f = FeedFeatures.fieldNames.count, w = FeedFeatures.denseNames.count
        var items: [FeedItem] = []
        var embeddings: [Int64: [Float]] = [:], categories: [Int64: Int32] = [:]
        for i in order {
            stored.ids += data.ids[i * f..<(i + 1) * f]
            stored.dense += data.dense[i * w..<(i + 1) * w]
            stored.content += data.content[i * d..<(i + 1) * d]
            items.append(
                FeedItem(
                    pin: ids[i], score: scores[i].score, p_save: scores[i].pSave, p_closeup: scores[i].pCloseup,
                    channels: ["content"]))
        }
        for i in 0..<candidates {
            embeddings[ids[i]] = Array(emb[i * d..<(i + 1) * d])
            categories[ids[i]] = cats[i]
        }
        let feed = Array(items.prefix(50))
        var store = FeedStore(
            feeds: [Int64(user): feed.map(\.pin)], embeddings: embeddings, categories: categories, d: d,
            runID: "night", sourceRun: "world")
        store.items = [Int64(user): feed]
        store.candidates = [Int64(user): items]
        store.features = [Int64(user): stored]
        store.ranker = ranker
        return Setup(world: world, truth: truth, store: store, topicOf: { world.topic(ofPin: Int($0)) })
    }

    /// Expected saves of `feed` (slot by slot) under the truth, the session's topic being `topic`.
    static func expectedSaves(_ s: Setup, _ feed: [Int64], sessionTopic topic: Int) -> Double {
        feed.enumerated().reduce(0) {
            $0
                + s.world.outcomeProbabilities(s.truth, pin: Int($1.element), position: $1.offset, sessionTopic: topic)
                .save
        }
    }

    /// A service over `store` with the given session events of user 3.
    static func serve(_ store: FeedStore, _ events: [(Int64, EventType)], alpha: Float) -> FeedService {
        let service = FeedService(store: store, rerank: SessionRerank(alpha: alpha, beta: 0.5))
        service.sessions.apply(
            events.enumerated().map {
                LoggedEvent(seq: UInt64($0.offset + 1), user: 3, pin: $0.element.0, type: $0.element.1, timestampMs: 1)
            })
        return service
    }

    @Test("saves of one topic raise the next feed's expected saves under that session topic; hides push a topic down")
    func savesAndHidesUnderTheTruth() throws {
        let s = try Self.setup()
        let runFeed = s.store.feeds[3]!
        // With no events: the run's ranking.
        let plain = try Self.serve(s.store, [], alpha: 0).feed(user: "3", k: "\(Self.k)", cursor: nil)
        #expect(plain.pins == Array(runFeed.prefix(Self.k)))

        // The session's topic: the user's second long-term interest (weight 0.3; under the truth a
        // session on it makes its pins the best: affinity 3 · 0.3 + 1.5 against 3 · 0.6 for the
        // first interest's). Three saves of its pins that are not in the first page.
        let topic = s.truth.interests[1]
        let page = Set(plain.pins)
        let saved = s.store.candidates[3]!.map(\.pin).filter { s.topicOf($0) == topic && !page.contains($0) }.prefix(3)
        #expect(saved.count == 3)
        let events = saved.map { ($0, EventType.save) }
        // α = 0: the session re-rank's similarity term is off, so only the ranker can react.
        let after = try Self.serve(s.store, events, alpha: 0).feed(user: "3", k: "\(Self.k)", cursor: nil)
        let before = Self.expectedSaves(s, plain.pins, sessionTopic: topic)
        let rescored = Self.expectedSaves(s, after.pins, sessionTopic: topic)
        let inTopic = { (feed: [Int64]) in feed.filter { s.topicOf($0) == topic }.count }
        #expect(rescored > 1.2 * before, "expected saves under the session topic: \(before) → \(rescored)")
        #expect(
            inTopic(after.pins) > inTopic(plain.pins),
            "topic \(topic): \(inTopic(plain.pins)) → \(inTopic(after.pins)) pins")
        // The floor is real: without the ranker's re-scoring the same session leaves the page as it was.
        var ignoring = s.store
        ignoring.ranker = nil
        let control = try Self.serve(ignoring, events, alpha: 0).feed(user: "3", k: "\(Self.k)", cursor: nil)
        #expect(Self.expectedSaves(s, control.pins, sessionTopic: topic) == before)

        // Hides: the same session, then three hides of the session topic's pins from beyond the
        // re-scored page: the topic's share of the page falls (the session re-rank, β = 0.5).
        let shown = Set(after.pins)
        let hidden = s.store.candidates[3]!.map(\.pin).filter {
            s.topicOf($0) == topic && !shown.contains($0) && !saved.contains($0)
        }.prefix(3)
        #expect(hidden.count == 3)
        let hid = try Self.serve(s.store, events + hidden.map { ($0, EventType.hide) }, alpha: 0)
            .feed(user: "3", k: "\(Self.k)", cursor: nil)
        #expect(
            inTopic(hid.pins) < inTopic(after.pins),
            "topic \(topic): \(inTopic(after.pins)) → \(inTopic(hid.pins)) pins")
    }
}

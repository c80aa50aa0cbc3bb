import Collective
import EventData
import Foundation
import Learning
import Linalg
import Ranking
import Serving
import Testing
import _TestSupport

/// The serving shard's scorer against the nightly ranking's: the same features and the same
/// (saved) model give the same scores and calibrated probabilities.
@Suite("Online re-scoring")
struct OnlineRankerTests {
    static let d = 6

    static func config() -> RankerConfig {
        var c = RankerConfig()
        c.fields = FeedFeatures.fieldNames.count
        c.dim = 8
        c.tableRows = 211
        c.hashIDs = true
        c.denseWidth = FeedFeatures.denseNames.count
        c.contentWidth = d
        c.crossLayers = 2
        c.experts = 2
        c.expertWidths = [16, 8]
        c.towerWidths = [4, 1]
        c.tasks = ["save", "closeup"]
        c.taskWeights = [1, 0.5]
        c.seed = 11
        return c
    }

    /// One user's candidates as `feed rank` builds them (no session events).
    static func request(n: Int) -> CTRData {
        var r = RandomStream(seed: 5)
        var user = FeedFeatures.User()
        user.country = 3
        user.device = 1
        user.engagements = 12
        user.categoryCounts = [1: 5, 2: 7]
        user.longTerm = (0..<d).map { _ in Float(r.normal()) }
        user.shortTerm = (0..<d).map { _ in Float(r.normal()) }
        var data = FeedFeatures.emptyData(contentWidth: d)
        for i in 0..<n {
            let vector = (0..<d).map { _ in Float(r.normal()) }
            FeedFeatures.append(
                user: user,
                pin: FeedFeatures.Pin(
                    category: Int32(i % 3), createdAt: 1_000_000 * Int64(i), vector: vector[...],
                    stats: FeedFeatures.PinStats(impressions: Int64(10 * i), closeups: Int64(i), saves: Int64(i / 2))),
                surface: 0, time: 90_000_000, prior: FeedFeatures.Prior(closeup: 0.1, save: 0.05), into: &data)
        }
        return data
    }

    @Test("the serving scorer gives the batch ranking's scores for a user without session events")
    func sameScoresAsBatch() throws {
        let model = RankerModel<Float>(Self.config())
        let comm = try Communicator.world()
        let trainer = try DataParallelTrainer(model: model, comm: comm)
        let calibrators: [String: Calibrator] = [
            "save": .platt(PlattScaling(a: 1.3, b: -0.4)),
            "closeup": .isotonic(IsotonicRegression(thresholds: [-1, 0, 1], values: [0.1, 0.3, 0.6])),
        ]
        let dir = try MPIRun.temporaryDirectory("online-ranker")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("ranker.h5").path
        try RankerArtifact.save(trainer: trainer, to: path, calibrators: calibrators)

        let data = Self.request(n: 9)
        // The nightly path (`FeedRanking.rank`): the in-memory model, RequestScorer, FeedScore.
        let logits = try RequestScorer(model).logits(data, range: 0..<data.count)
        let batch = FeedScore.combine(logits: logits, tasks: model.config.tasks, calibrators: calibrators)
        // The serving path: the saved ranker loaded without MPI.
        let online = try OnlineRanker(path: path)
        #expect(online.calibrators == calibrators)
        let served = try online.score(data)
        #expect(served.count == batch.count)
        for (a, b) in zip(served, batch) {
            #expect(abs(a.score - b.score) <= 1e-6)
            #expect(abs(a.pSave - b.pSave) <= 1e-6)
            #expect(abs(a.pCloseup - b.pCloseup) <= 1e-6)
        }
        #expect(Set(batch.map(\.score)).count > 1)
    }

    /// Rows of users whose saves follow the share of their engagements in the pin's category.
    static func categoryRows(n: Int, seed: UInt64) -> CTRData {
        var r = RandomStream(seed: seed)
        var data = FeedFeatures.emptyData(contentWidth: d)
        var save: [Float] = [], closeup: [Float] = []
        for _ in 0..<n {
            var user = FeedFeatures.User()
            user.engagements = 5 + r.int(below: 20)
            let category = Int32(r.int(below: 3))
            let inCategory = r.int(below: user.engagements + 1)
            user.categoryCounts = [category: inCategory]
            let vector = (0..<d).map { _ in Float(r.normal()) }
            FeedFeatures.append(
                user: user,
                pin: FeedFeatures.Pin(
                    category: category, createdAt: 0, vector: vector[...], stats: FeedFeatures.PinStats()),
                surface: 0, time: 3_600_000, prior: FeedFeatures.Prior(closeup: 0.1, save: 0.05), into: &data)
            let share = Double(inCategory) / Double(user.engagements)
            save.append(r.uniform() < share ? 1 : 0)
            closeup.append(r.uniform() < 0.5 * share ? 1 : 0)
        }
        data.labels = [save, closeup]
        return data
    }

    /// A small ranker trained on rows whose saves follow the category share (made once).
    static let trained: Result<String, TrainingFailure> = {
        do {
            let dir = try MPIRun.temporaryDirectory("online-session")
            let path = dir.appendingPathComponent("ranker.h5").path
            var options = RankerTrainingOptions()
            options.epochs = 6
            options.batchSize = 256
            options.learningRate = 3e-3
            _ = try RankerTrainer.train(
                config: config(), train: categoryRows(n: 6_000, seed: 1), valid: categoryRows(n: 1_000, seed: 2),
                options: options, comm: try Communicator.world(), save: path)
            return .success(path)
        } catch { return .failure(TrainingFailure(message: "\(error)")) }
    }()
    struct TrainingFailure: Error { var message: String }

    /// User 7 (20 engagements, 2 in category 0) with a feed of 12 pins 100… over categories 0, 1,
    /// 2, scored by the trained ranker: the store (ranker, items, features) and the items.
    static func session7Store() throws -> (store: FeedStore, items: [FeedItem], categories: [Int64: Int32]) {
        let ranker = try OnlineRanker(path: try trained.get())
        var user = FeedFeatures.User()
        user.engagements = 20
        user.categoryCounts = [0: 2, 1: 9, 2: 9]
        var r = RandomStream(seed: 9)
        var data = FeedFeatures.emptyData(contentWidth: Self.d)
        var categories: [Int64: Int32] = [:]
        let pins = (0..<12).map { Int64(100 + $0) }
        for (i, p) in pins.enumerated() {
            let vector = (0..<Self.d).map { _ in Float(r.normal()) }
            categories[p] = Int32(i % 3)
            FeedFeatures.append(
                user: user,
                pin: FeedFeatures.Pin(
                    category: Int32(i % 3), createdAt: 0, vector: vector[...], stats: FeedFeatures.PinStats()),
                surface: 0, time: 3_600_000, prior: FeedFeatures.Prior(closeup: 0.1, save: 0.05), into: &data)
        }
        let scores = try ranker.score(data)
        var stored = StoredFeatures(contentWidth: Self.d)
        stored.ids = data.ids
        stored.dense = data.dense
        stored.content = data.content
        let items = pins.indices.map {
            FeedItem(
                pin: pins[$0], score: scores[$0].score, p_save: scores[$0].pSave, p_closeup: scores[$0].pCloseup,
                channels: ["content"])
        }
        var store = FeedStore(
            feeds: [7: pins], embeddings: [:], categories: categories, d: Self.d, runID: "night", sourceRun: "world")
        store.items = [7: items]
        store.features = [7: stored]
        store.ranker = ranker
        return (store, items, categories)
    }

    /// Three saves of user 7 in category 0 (pins 100, 103, 106).
    static let threeSaves = [100, 103, 106].enumerated().map {
        LoggedEvent(seq: UInt64($0.offset + 1), user: 7, pin: Int64($0.element), type: .save, timestampMs: 1)
    }

    @Test("a session's saves raise p_save of the feed's pins in their category (online re-scoring)")
    func sessionSavesRaiseCategory() throws {
        let (store, items, categories) = try Self.session7Store()
        let pins = items.map(\.pin)
        let service = FeedService(store: store)

        // Without session events: the stored ranking and scores.
        let before = try service.feed(user: "7", k: "12", cursor: nil)
        #expect(before.pins == pins)
        #expect(before.items == items)

        // Three saves in category 0 (pins 100, 103, 106): the other category-0 pins' p_save rises.
        service.sessions.apply(Self.threeSaves)
        let after = try service.feed(user: "7", k: "12", cursor: nil)
        let byPin = Dictionary(uniqueKeysWithValues: items.map { ($0.pin, $0) })
        let rescored = try #require(after.items)
        #expect(!rescored.contains { [100, 103, 106].contains($0.pin) })
        let same = rescored.filter { categories[$0.pin] == 0 }
        #expect(same.count == 1)
        for item in same { #expect(item.p_save > byPin[item.pin]!.p_save) }
        for item in rescored { #expect(item.channels == ["content"]) }
    }

    @Test("cursor pages and POST /v1/feed show the re-scored ranking, not the stored scores")
    func pagesAndStatelessFeedRescore() throws {
        let (store, items, _) = try Self.session7Store()
        let stored = Dictionary(uniqueKeysWithValues: items.map { ($0.pin, $0) })
        // The whole re-scored ranking in one page, from a service with the same session.
        let whole = FeedService(store: store)
        whole.sessions.apply(Self.threeSaves)
        let full = try #require(try whole.feed(user: "7", k: "12", cursor: nil).items)
        #expect(full.count == 9)
        #expect(full.contains { $0.score != stored[$0.pin]!.score }, "the session changes scores")
        // The same ranking in pages of 4 through the cursor.
        let paged = FeedService(store: store)
        paged.sessions.apply(Self.threeSaves)
        var pages: [FeedItem] = []
        var answer = try paged.feed(user: "7", k: "4", cursor: nil)
        pages += try #require(answer.items)
        while let cursor = answer.cursor {
            answer = try paged.feed(user: "7", k: "4", cursor: Substring(cursor))
            pages += try #require(answer.items)
        }
        #expect(pages == full, "every page carries the re-scored items of the one ranking")
        // POST /v1/feed with the saves in the body (stateless) re-scores the same way.
        let stateless = try FeedService(store: store).answer(
            user: "7", k: "12", session: [100, 103, 106].map { SessionEvent(pin: Int64($0), type: "save") })
        #expect(stateless.items == full)
        #expect(stateless.pins == full.map(\.pin))
    }
}

import Collective
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
}

import Collective
import Evaluation
import Events
import Feed

/// The stages' printed tables as their summaries (`StageSummary`): what `mosaic evaluate`
/// reports and `mosaic monitor` compares.
extension CandidatesSummary {
    /// From `CandidateGeneration.evaluateRows` (empty rows: no hold-out).
    init(
        rows: [FeedEvaluation.CandidateRow], sizes: [Int], users: Int, candidatesPerUser: Double, holdoutDays: Int
    ) {
        self.init(
            users: users, candidatesPerUser: candidatesPerUser, holdoutDays: holdoutDays, sizes: sizes,
            oracleCount: 100,
            channels: rows.map {
                Channel(
                    channel: $0.channel, oracleRecall: $0.recall, savedRecall: $0.savedRecall,
                    candidatesPerUser: $0.meanCandidates)
            })
    }
}

extension FeedSummary {
    /// From `FeedRanking.reportRows`: each policy's row with its feeds' shape when measured.
    init(rows: [FeedEvaluation.Row], shape: [FeedShape.Row]?, users: Int, k: Int, holdoutDays: Int) {
        let shapeOf = Dictionary((shape ?? []).map { ($0.policy, $0) }, uniquingKeysWith: { a, _ in a })
        self.init(
            users: users, k: k, holdoutDays: holdoutDays,
            policies: rows.map { r in
                var p = Policy(
                    policy: r.policy, usersWithSaves: r.usersWithSaves, hitRate: r.hitRate, recall: r.recall,
                    expectedSaves: r.expectedSaves, oracleRecall: r.oracleRecall)
                p.ndcg = r.ndcg
                if let s = shapeOf[r.policy] {
                    p.categoriesPerFeed = s.categoriesPerFeed
                    p.intraListCosine = s.intraListCosine
                    p.coverage = s.coverage
                    p.freshShare = s.freshShare
                }
                return p
            })
    }
}

extension FeedSummary {
    /// Collective: `FeedRanking.reportRows` of the published feeds as markdown tables and as a
    /// summary (`users` left for the caller to fill); the hold-out in whole days after `cut`.
    static func evaluate(
        users: [UserEvents], allUsers: [UserEvents], candidates: Candidates, feeds: RankedFeeds, k: Int, cut: Int64,
        world: WorldGenerator, pins: PinFeatureTable, comm: Communicator
    ) throws -> (table: String, summary: FeedSummary) {
        let days = Int((try UserEvents.latest(allUsers, comm: comm) - cut + 86_399_999) / 86_400_000)
        let (rows, shape) = try FeedRanking.reportRows(
            users: users, candidates: candidates, feeds: feeds, k: k, cut: cut, world: world, pins: pins, comm: comm)
        var table = FeedEvaluation.markdown(rows, k: k, holdoutDays: days)
        if let shape { table += "\n\n" + FeedShape.markdown(shape, freshDays: 2) }
        return (table, FeedSummary(rows: rows, shape: shape, users: 0, k: k, holdoutDays: days))
    }
}

import Artifacts
import Foundation
import Layers
import RankerInference

/// The night's ranker in the serving shard (no MPI): a saved feed ranker (`ranker.h5`, loaded by
/// `RankerArtifact.load` with its calibrators) scoring one user's candidates with the serving
/// fast path (`RequestScorer`, position-free) and the nightly ranking's final score
/// (`FeedScore`), so the same features give the same scores as `feed rank`. Thread-safe: a pool
/// of scorers (one per core by default; a request takes a free one, or makes one when none is
/// free and fewer than `maxScorers` exist).
public final class OnlineRanker: @unchecked Sendable {
    /// The file it was loaded from.
    public let path: String
    /// The ranker's config (tasks, widths).
    public let config: RankerConfig
    /// The per-task calibrators saved with the ranker (empty: sigmoid).
    public let calibrators: [String: Calibrator]
    /// Weights of the calibrated probabilities in the score (as `feed rank`'s defaults).
    public let saveWeight: Double, closeupWeight: Double
    let model: RankerModel<Float>
    let lock = NSLock()
    var free: [RequestScorer] = []  // guarded by `lock`
    var made = 0  // guarded by `lock`
    /// Scorers kept at most (the requests scoring at once).
    public let maxScorers: Int

    /// Loads the ranker at `path`; throws naming the file unless it is a DCN-v2 ranker (the
    /// architecture `feed rank` scores with).
    public init(
        path: String, saveWeight: Double = 1, closeupWeight: Double = 1,
        maxScorers: Int = ProcessInfo.processInfo.activeProcessorCount
    ) throws {
        let (config, model, calibrators) = try RankerArtifact.load(path)
        guard let ranker = model as? RankerModel<Float> else {
            throw ArtifactError(
                file: path, message: "a \(config.architecture.rawValue) ranker; online re-scoring needs dcn-mmoe")
        }
        self.path = path
        self.config = config
        self.calibrators = calibrators
        self.saveWeight = saveWeight
        self.closeupWeight = closeupWeight
        self.model = ranker
        self.maxScorers = max(1, maxScorers)
    }

    /// Runs `body` with a scorer of the pool (waits for one when `maxScorers` are busy).
    func withScorer<T>(_ body: (RequestScorer) throws -> T) rethrows -> T {
        var scorer: RequestScorer? = nil
        while scorer == nil {
            lock.lock()
            if let s = free.popLast() {
                scorer = s
            } else if made < maxScorers {
                made += 1
                scorer = RequestScorer(model)
            }
            lock.unlock()
            if scorer == nil { usleep(50) }
        }
        defer { lock.withLock { free.append(scorer!) } }
        return try body(scorer!)
    }

    /// The scores of every row of `data` (one user's candidates, `FeedFeatures` rows). Throws
    /// naming the file on a score that is not finite.
    public func score(_ data: CTRData) throws -> [FeedScore.Scored] {
        guard data.count > 0 else { return [] }
        let logits = try withScorer { try $0.logits(data, range: 0..<data.count) }
        for (task, row) in logits.enumerated() {
            if let i = row.firstIndex(where: { !$0.isFinite }) {
                throw ArtifactError(
                    file: path, message: "\(config.tasks[task]) score \(row[i]) of candidate \(i) is not finite")
            }
        }
        return FeedScore.combine(
            logits: logits, tasks: config.tasks, calibrators: calibrators, saveWeight: saveWeight,
            closeupWeight: closeupWeight)
    }
}

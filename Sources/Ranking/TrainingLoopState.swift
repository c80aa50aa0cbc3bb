import Artifacts

/// Where the ranker's training loop stands, beside the trainer's own state in a checkpoint
/// (group `/loop`): a resumed run continues from here and ends with the model of an
/// uninterrupted one (the epoch order is a function of (seed, epoch), the batches of their
/// global index).
struct TrainingLoopState {
    /// The epoch (1-based) and the steps of it already taken.
    var epoch = 1, step = 0
    /// The current learning rate (after reductions on a plateau).
    var lr: Double
    /// Sum of the step losses of the current epoch so far (for its log line).
    var lossSum = 0.0
    /// Best mean validation AUC so far, its epoch, epochs since, and whether patience ran out.
    var bestAUC = -Double.infinity, bestEpoch = 0, bad = 0
    var stopped = false
    /// The best epoch's parameters and embedding tables.
    var best: (params: [Float], tables: [[Float]])? = nil

    init(lr: Double) { self.lr = lr }

    /// Adds the state to the checkpoint file at `path` (one process).
    func write(_ path: String) throws {
        let file = try H5File(path: path, mode: .readWrite)
        let g = try file.root.createGroup("loop")
        try g.setAttribute("epoch", Int64(epoch))
        try g.setAttribute("step", Int64(step))
        try g.setAttribute("lr", lr)
        try g.setAttribute("loss_sum", lossSum)
        try g.setAttribute("best_auc", bestAUC)
        try g.setAttribute("best_epoch", Int64(bestEpoch))
        try g.setAttribute("bad", Int64(bad))
        try g.setAttribute("stopped", Int64(stopped ? 1 : 0))
        if let best {
            try g.write("best_parameters", best.params)
            for (i, t) in best.tables.enumerated() { try g.write("best_table_\(i)", t) }
            try g.setAttribute("best_tables", Int64(best.tables.count))
        }
        try file.flush()
    }

    /// Reads the state of the checkpoint at `path`; throws naming the file when it has none.
    static func read(_ path: String) throws -> TrainingLoopState {
        let root = try H5File(path: path, mode: .read).root
        let g: H5Group
        do { g = try root.group("loop") } catch {
            throw ArtifactError(
                file: path,
                message: "not a ranker training checkpoint (no /loop group): delete it, or run without --resume")
        }
        var s = TrainingLoopState(lr: try g.doubleAttribute("lr"))
        s.epoch = Int(try g.intAttribute("epoch"))
        s.step = Int(try g.intAttribute("step"))
        s.lossSum = try g.doubleAttribute("loss_sum")
        s.bestAUC = try g.doubleAttribute("best_auc")
        s.bestEpoch = Int(try g.intAttribute("best_epoch"))
        s.bad = Int(try g.intAttribute("bad"))
        s.stopped = try g.intAttribute("stopped") != 0
        if g.hasAttribute("best_tables") {
            let tables = try (0..<Int(try g.intAttribute("best_tables"))).map {
                try g.read("best_table_\($0)", as: Float.self)
            }
            s.best = (try g.read("best_parameters", as: Float.self), tables)
        }
        return s
    }
}

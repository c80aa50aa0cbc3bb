import Artifacts
import Collective
import Learning

/// A saved ranker: the trainer's HDF5 checkpoint (parameters, embedding tables, optimizer
/// state, optional per-task calibrators under `/calibration`) plus the attribute
/// `ranker_config` (the `RankerConfig` as JSON), so a scorer rebuilds the architecture.
public enum RankerArtifact {
    /// Writes the checkpoint and the config. Collective (rank 0 writes).
    public static func save<M: RankingModel>(
        trainer: DataParallelTrainer<M>, to path: String, calibrators: [String: Calibrator] = [:]
    ) throws {
        try trainer.saveCheckpoint(to: path, calibrators: calibrators)
        if trainer.comm.isRoot {
            let file = try H5File(path: path, mode: .readWrite)
            try file.root.setAttribute("ranker_config", trainer.model.config.json())
            try file.flush()
        }
        try trainer.comm.barrier()
    }

    /// The config, the model with its saved parameters, and the saved calibrators (by task
    /// name; empty when none). Throws naming the file and object on mismatch.
    public static func load(_ path: String) throws -> (
        config: RankerConfig, model: any RankingModel<Float>, calibrators: [String: Calibrator]
    ) {
        let root = try H5File(path: path, mode: .read).root
        let config = try RankerConfig.fromJSON(try root.stringAttribute("ranker_config"))
        try config.validate()
        let model = makeRanker(config, as: Float.self)
        guard try root.stringAttribute("layout") == model.parameters.layout else {
            throw ArtifactError(
                file: path, object: "/parameters", message: "layout differs from the saved config's model")
        }
        model.parameters.setValues(try root.read("parameters", as: Float.self))
        let tables = try root.group("tables")
        for table in model.tables {
            let v = try tables.group(table.name).read("values", as: Float.self)
            guard v.count == table.values.count else {
                throw ArtifactError(
                    file: path, object: "/tables/\(table.name)/values",
                    message: "\(v.count) values, expected \(table.rows)×\(table.dim)")
            }
            table.values = v
        }
        return (config, model, try DataParallelTrainer<RankerModel<Float>>.calibrators(in: path))
    }
}

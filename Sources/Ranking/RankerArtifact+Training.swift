import Artifacts
import Collective
import Learning
import RankerInference

extension RankerArtifact {
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

    /// Stores `provenance` in the ranker file at `path`. Collective (rank 0 writes).
    public static func stamp(_ path: String, provenance: Provenance, comm: Communicator) throws {
        if comm.isRoot {
            let file = try H5File(path: path, mode: .readWrite)
            try file.root.setAttribute("embedding_version", provenance.embeddingVersion)
            try file.root.setAttribute("feature_version", provenance.featureVersion)
            try file.flush()
        }
        try comm.barrier()
    }
}

import Artifacts
import Layers

/// A saved ranker: the trainer's HDF5 checkpoint (parameters, embedding tables, optimizer
/// state, optional per-task calibrators under `/calibration`) plus the attribute
/// `ranker_config` (the `RankerConfig` as JSON), so a scorer rebuilds the architecture.
public enum RankerArtifact {
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
        return (config, model, try Calibrator.saved(in: path))
    }

    /// What a ranker was trained on: the PinSage embedding model's version and the features'
    /// version (`FeedFeatures.version`); stored as attributes of the ranker file.
    public struct Provenance: Equatable, Sendable {
        public var embeddingVersion: String
        public var featureVersion: String
        public init(embeddingVersion: String, featureVersion: String) {
            self.embeddingVersion = embeddingVersion
            self.featureVersion = featureVersion
        }
    }

    /// Throws naming `path` and what differs unless the ranker there was trained on `expected`
    /// (a ranker without the attributes predates them and is refused too).
    public static func check(_ path: String, expected: Provenance) throws {
        let root = try H5File(path: path, mode: .read).root
        for (name, want) in [
            ("embedding_version", expected.embeddingVersion), ("feature_version", expected.featureVersion),
        ] {
            guard let found = try? root.stringAttribute(name) else {
                throw ArtifactError(
                    file: path,
                    message:
                        "no \(name) attribute: train the ranker again with `mosaic ranker train --data` on this run")
            }
            guard found == want else {
                throw ArtifactError(
                    file: path,
                    message:
                        "trained with \(name) '\(found)', but this run has '\(want)': train the ranker again on this run's embeddings and features"
                )
            }
        }
    }
}

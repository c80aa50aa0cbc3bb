import Artifacts
import Collective
import EventData
import Events
import Foundation
import Learning
import Publishing

/// The `user_vectors` artifact of a run: every user's two-tower vector at a time, sharded by
/// user (`Sharding.owner` over the writing ranks).
///
/// Layout of each shard file `user_vectors/part-RRRRR-of-SSSSS.h5`: attributes `shard_rank`,
/// `shard_count`; group `/user_vectors` with `user_ids` (n) int64, `vectors` (n, d) float32 (unit
/// length), and the attributes `model_version` (the two-tower model), `embedding_model_version`
/// (the PinSage vectors the tower read and whose index the vectors search) and `at_ms` (the
/// time the vectors describe: events strictly before it).
public struct UserVectors: Sendable {
    /// Users (n) and their vectors (n × d, row-major).
    public var users: [Int64]
    public var vectors: [Float]
    public var d: Int
    public var modelVersion: String, embeddingVersion: String
    public var atMs: Int64

    public init(users: [Int64], vectors: [Float], d: Int, modelVersion: String, embeddingVersion: String, atMs: Int64) {
        precondition(vectors.count == users.count * d, "UserVectors: vectors must be users.count × d")
        self.users = users
        self.vectors = vectors
        self.d = d
        self.modelVersion = modelVersion
        self.embeddingVersion = embeddingVersion
        self.atMs = atMs
    }

    /// The vectors of this rank's `users` at `at` (events strictly before it) from `model` over
    /// the pin vectors `vectors` (collective).
    public static func embed(
        users: [UserEvents], profiles: [Int64: UserProfile], vectors: PinVectorTable, model: TwoTowerModel<Float>,
        at: Int64, modelVersion: String, embeddingVersion: String, batchUsers: Int = 256, comm: Communicator
    ) throws -> UserVectors {
        let config = model.config, d = config.d
        var inputs: [Float] = []
        try UserHistoryRounds.run(users: users, before: at, vectors: vectors, batchUsers: batchUsers, comm: comm) {
            user, row, table in
            var state = UserTowerState(config: config)
            for i in user.pins.indices where user.times[i] < at && UserTowerState.reads(user.types[i]) {
                if let r = row[user.pins[i]] {
                    state.absorb(vector: table[r * d..<(r + 1) * d], type: user.types[i], time: user.times[i])
                }
            }
            state.encode(at: at, profile: profiles[user.user], into: &inputs)
        }
        var out: [Float] = []
        let chunk = 1024
        for lo in stride(from: 0, to: users.count, by: chunk) {
            let hi = min(users.count, lo + chunk), w = config.inputWidth
            out += model.userVectors(Tensor(rows: hi - lo, cols: w, data: Array(inputs[lo * w..<hi * w]))).data
        }
        return UserVectors(
            users: users.map(\.user), vectors: out, d: d, modelVersion: modelVersion,
            embeddingVersion: embeddingVersion,
            atMs: at)
    }

    /// Writes this rank's shard into `run` and records it (every rank calls it; commit after).
    public func write(to run: RunWriter, rank: Int, ranks: Int) throws {
        let path = try run.shardPath(artifact: "user_vectors")
        do {
            let f = try H5File(path: path, mode: .create)
            try f.root.setAttribute("shard_rank", Int64(rank))
            try f.root.setAttribute("shard_count", Int64(ranks))
            let g = try f.root.createGroup("user_vectors")
            try g.write("user_ids", users, shape: [users.count])
            try g.write("vectors", vectors, shape: [users.count, d])
            try g.setAttribute("model_version", modelVersion)
            try g.setAttribute("embedding_model_version", embeddingVersion)
            try g.setAttribute("at_ms", atMs)
            try f.flush()
        }
        try run.record(artifact: "user_vectors", path: path, rows: users.count)
    }

    /// Collective: the vectors of the users this rank owns (`Sharding.owner` over `comm.size`)
    /// from the user-vectors run at `root`. Rank r reads the shards r, r + size, …; when the
    /// writer had another rank count the rows are routed to their owners.
    ///
    /// - Throws: `ArtifactError` naming the file when the run has no `user_vectors` artifact or
    ///   its shards disagree on width or versions.
    public static func readMine(root: URL, runID: String? = nil, comm: Communicator) throws -> UserVectors {
        let run = try PublishedRun.open(root: root, runID: runID)
        guard run.manifest.artifact("user_vectors") != nil else {
            throw ArtifactError(
                file: run.directory.appendingPathComponent(PublishedRun.manifestName).path,
                message:
                    "no 'user_vectors' artifact (has: \(run.manifest.artifacts.map(\.name).joined(separator: ", "))); pass the root of a `mosaic retrieval embed-users` run"
            )
        }
        let paths = try run.paths(of: "user_vectors")
        var mine = UserVectors(users: [], vectors: [], d: 0, modelVersion: "", embeddingVersion: "", atMs: 0)
        for (i, path) in paths.enumerated() where i % comm.size == comm.rank {
            let f = try H5File(path: path, mode: .read)
            let g = try f.root.group("user_vectors")
            let set = try g.dataset("vectors", of: Float.self, shape: [nil, nil])
            let model = try g.stringAttribute("model_version"),
                embedding = try g.stringAttribute("embedding_model_version")
            if mine.d > 0, mine.d != set.shape[1] || mine.modelVersion != model || mine.embeddingVersion != embedding {
                throw ArtifactError(
                    file: path,
                    message:
                        "width \(set.shape[1]), model \(model) over \(embedding); another shard has width \(mine.d), model \(mine.modelVersion) over \(mine.embeddingVersion)"
                )
            }
            mine.d = set.shape[1]
            mine.modelVersion = model
            mine.embeddingVersion = embedding
            mine.atMs = try g.intAttribute("at_ms")
            mine.users += try g.read("user_ids", as: Int64.self)
            mine.vectors += try set.readRows(0..<set.shape[0], as: Float.self)
        }
        mine.d = Int(try comm.allreduce(Int64(mine.d), op: .max))
        mine.modelVersion = try comm.broadcast(string: mine.modelVersion)
        mine.embeddingVersion = try comm.broadcast(string: mine.embeddingVersion)
        mine.atMs = try comm.allreduce(mine.atMs, op: .max)
        if paths.count == comm.size { return mine }
        let d = mine.d, owners = mine.users.map { Sharding.owner($0, ranks: comm.size) }
        var ids = [[Int64]](repeating: [], count: comm.size), rows = [[Float]](repeating: [], count: comm.size)
        for (i, r) in owners.enumerated() {
            ids[r].append(mine.users[i])
            rows[r] += mine.vectors[i * d..<(i + 1) * d]
        }
        let u = try comm.alltoallv(ids.flatMap { $0 }, sendCounts: ids.map(\.count))
        let v = try comm.alltoallv(rows.flatMap { $0 }, sendCounts: rows.map(\.count))
        mine.users = u.values
        mine.vectors = v.values
        return mine
    }
}

import Artifacts
import Collective
import Events
import Foundation
import Index
import Models

/// The two-tower channel: each user's vector (`mosaic retrieval embed-users`) searched in the
/// IVF index over the PinSage vectors the tower was trained on.
public struct UserVectorChannel: Sendable {
    /// This rank's users' vectors.
    public let vectors: UserVectors
    private let row: [Int64: Int]

    public init(vectors: UserVectors) {
        self.vectors = vectors
        row = Dictionary(vectors.users.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The vectors of this rank's users from the user-vectors run at `root`, checked against the
    /// PinSage channel whose index they will search. Collective.
    ///
    /// - Throws: `ArtifactError` naming the run when its vectors were made over other embeddings
    ///   (`embeddingVersion`) or have another width than the index.
    public static func load(root: URL, embeddingVersion: String, d: Int, comm: Communicator) throws -> UserVectorChannel
    {
        let v = try UserVectors.readMine(root: root, comm: comm)
        guard v.embeddingVersion == embeddingVersion, v.d == d else {
            throw ArtifactError(
                file: root.path,
                message:
                    "user vectors of model '\(v.modelVersion)' over embeddings '\(v.embeddingVersion)' (d \(v.d)); the PinSage index is over '\(embeddingVersion)' (d \(d)): re-run `mosaic retrieval embed-users` on these embeddings"
            )
        }
        return UserVectorChannel(vectors: v)
    }

    /// The vectors (one row each) of `users[i]` for `i` in `batch` that have one, and those `i`.
    func queries(_ users: [UserEvents], _ batch: [Int]) -> (queries: [Float], asked: [Int]) {
        let d = vectors.d
        var queries: [Float] = [], asked: [Int] = []
        for i in batch {
            guard let r = row[users[i].user] else { continue }
            queries += vectors.vectors[r * d..<(r + 1) * d]
            asked.append(i)
        }
        return (queries, asked)
    }

    /// For each of this rank's `users`, up to `k` pins nearest to the user's vector in `index`,
    /// best first, `exclude(user index)` left out; empty for a user without a vector.
    /// Collective: users go in rounds of `batchUsers`, every rank's queries searched together.
    public func candidates(
        users: [UserEvents], index: IVFIndex, k: Int, nprobe: Int, batchUsers: Int,
        exclude: (Int) -> Set<Int64>, comm: Communicator
    ) throws -> [[Int64]] {
        let want = k + k / 4
        var out = [[Int64]](repeating: [], count: users.count)
        let rounds = Int(try comm.allreduce(Int64((users.count + batchUsers - 1) / batchUsers), op: .max))
        for round in 0..<rounds {
            let batch = Array(users.indices.dropFirst(round * batchUsers).prefix(batchUsers))
            let (queries, asked) = self.queries(users, batch)
            let (_, labels) = try index.searchOwn(
                queries, k: want, parameters: SearchParameters(nprobe: nprobe), comm: comm)
            for (q, i) in asked.enumerated() {
                let skip = exclude(i)
                out[i] = Array(labels[q * want..<(q + 1) * want].filter { $0 >= 0 && !skip.contains($0) }.prefix(k))
            }
        }
        return out
    }
}

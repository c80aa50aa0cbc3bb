import ArgumentParser
import EventData
import Feed
import Foundation

/// The optional retrieval channels of `feed candidates`: the night's runs they read and their
/// settings.
struct CandidateChannelOptions: ParsableArguments {
    @Option(help: "Pixie channel: root of a walks run (`mosaic graph walks`) over the dataset's graph; optional.")
    var walks: String?
    @Option(help: "PinSage channel: root of an embeddings run (`mosaic pinsage embed`); with --pinsage-index.")
    var pinsageEmbeddings: String?
    @Option(
        help: "PinSage channel: root of the index run over those embeddings (`mosaic index build --embeddings --out`).")
    var pinsageIndex: String?
    @Option(
        help:
            "Two-tower channel: root of a user-vectors run (`mosaic retrieval embed-users`) over the PinSage embeddings; needs --pinsage-index."
    )
    var userVectors: String?
    @Option(
        help:
            "Fresh channel: pins created in the last D days before the cut, by content similarity to the user's interests; 0 turns it off."
    )
    var freshDays = 2
    @Option(
        help:
            "Merge weights, e.g. `two-tower=2,fresh=0.5`: each channel's share of the merged slots is its weight over the sum (0 drops a channel from the merge); defaults, tuned on the validation world: content=2, trending=8, pixie=1, fresh=0.25, pinsage=0.5, two-tower=4, user-cf=0.5."
    )
    var channelWeights = ""

    /// `--channel-weights` parsed.
    var weights: [String: Double] {
        get throws {
            var out: [String: Double] = [:]
            for item in channelWeights.split(separator: ",") {
                let parts = item.split(separator: "=")
                guard parts.count == 2, let w = Double(parts[1]), w >= 0 else {
                    throw ValidationError("--channel-weights: expected name=weight (weight ≥ 0), found '\(item)'")
                }
                out[String(parts[0])] = w
            }
            return out
        }
    }
    @Option(
        help:
            "User–user CF channel (with --user-vectors): the recent saves of this many nearest users in two-tower space; 0 turns it off."
    )
    var cfNeighbours = 100
    @Flag(
        inversion: .prefixedNo,
        help:
            "PinSage channel: interests as clusters of the engaged pins' PinSage vectors (PinnerSage medoids) instead of the most engaged categories."
    )
    var pinsageClusters = false

    func validate() throws {
        _ = try weights
        guard cfNeighbours >= 0, freshDays >= 0 else { throw ValidationError("--cf-neighbours and --fresh-days ≥ 0") }
        guard (pinsageEmbeddings == nil) == (pinsageIndex == nil) else {
            throw ValidationError("pass both --pinsage-embeddings and --pinsage-index, or neither")
        }
        guard userVectors == nil || pinsageIndex != nil else {
            throw ValidationError(
                "--user-vectors searches the PinSage index: pass --pinsage-embeddings and --pinsage-index")
        }
    }

    /// What `CandidateGeneration.prepare` loads.
    func inputs(world: DatasetReader, trendingDays: Int) -> CandidateGeneration.Inputs {
        var inputs = CandidateGeneration.Inputs(world: world)
        inputs.walks = walks.map { URL(fileURLWithPath: $0) }
        inputs.pinsageEmbeddings = pinsageEmbeddings.map { URL(fileURLWithPath: $0) }
        inputs.pinsageIndex = pinsageIndex.map { URL(fileURLWithPath: $0) }
        inputs.userVectors = userVectors.map { URL(fileURLWithPath: $0) }
        inputs.freshDays = freshDays
        inputs.cfNeighbours = cfNeighbours
        inputs.trendingDays = trendingDays
        return inputs
    }

    /// The merge weights and interest mode into `generation`.
    func configure(_ generation: inout CandidateGeneration) throws {
        generation.pinsageClusters = pinsageClusters
        generation.weights.merge(try weights) { _, new in new }
    }
}

import Collective
import Foundation

/// A ranker variant named by `+`-joined parts, as the experiments list them: a base (`lr`: the
/// logistic baseline with the mean-pooled short history; `lr-nohist`: without history; `dcn`:
/// DCN-v2 + MMoE with the position tower when the config has one; `dcn-nopos`: without it),
/// then sequence parts (`din`: target attention over the last `shortLength` events; `sim-hard`
/// or `sim` / `sim-soft`: SIM's GSU keeping `simK` events by category or by embedding;
/// `transformer`: the Transformer over the last `transformerLength` events with the candidate as
/// the final token, its tokens with the pins' content embeddings when the data has them; `ids`:
/// its tokens without content; `notime`: without the time-since bucket; `skips`: histories
/// with skip events — impressions without engagement — which the data must then provide).
public enum RankerVariant {
    /// Applies `variant` to `config` (a DCN base configuration).
    ///
    /// - Throws: `RankerError` naming the variant and the part that is not understood.
    public static func apply(
        _ variant: String, to config: inout RankerConfig, shortLength: Int, simK: Int, transformerLength: Int = 50
    ) throws {
        var parts = variant.split(separator: "+").map(String.init)
        guard let base = parts.first else { throw RankerError("variant '\(variant)': empty") }
        parts.removeFirst()
        switch base {
        case "lr":
            config.architecture = .logistic
            config.positionBuckets = 0
            config.shortLength = shortLength
        case "lr-nohist":
            config.architecture = .logistic
            config.positionBuckets = 0
        case "dcn-nopos": config.positionBuckets = 0
        case "dcn": break
        default: throw RankerError("variant '\(variant)': must start with lr, lr-nohist, dcn or dcn-nopos")
        }
        for part in parts {
            switch part {
            case "din": config.shortLength = shortLength
            case "sim", "sim-hard":
                config.simK = simK
                config.simSearch = "hard"
            case "sim-soft":
                config.simK = simK
                config.simSearch = "soft"
            case "transformer":
                config.transformerLength = transformerLength
                config.transformerContent = config.contentWidth > 0
            case "ids": config.transformerContent = false
            case "notime": config.transformerTime = false
            case "skips": config.skipEvents = true
            default:
                throw RankerError(
                    "variant '\(variant)': unknown part '\(part)' (din, sim-hard, sim-soft, transformer, ids, notime, skips)"
                )
            }
        }
    }
}

extension RankerTrainer {
    /// Collective: every row's logits (tasks × rows) on every rank, with a model of any type.
    public static func score(any model: any RankingModel<Float>, _ data: CTRData, comm: Communicator) throws
        -> [[Float]]
    {
        func open<M: RankingModel>(_ m: M) throws -> [[Float]] where M.Scalar == Float {
            try score(m, data, comm: comm)
        }
        return try open(model)
    }

    /// This rank's logits (tasks × its rows), with a model of any type.
    public static func scoreLocal(any model: any RankingModel<Float>, _ data: CTRData, comm: Communicator)
        -> [[Float]]
    {
        func open<M: RankingModel>(_ m: M) -> [[Float]] where M.Scalar == Float { scoreLocal(m, data, comm: comm) }
        return open(model)
    }
}

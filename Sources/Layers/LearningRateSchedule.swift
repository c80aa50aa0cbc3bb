import Foundation

/// Learning rate as a function of the step (1-based): linear warm-up from 0 over `warmupSteps`,
/// then `decay` from `base`.
public struct LearningRateSchedule: Sendable, Equatable {
    public enum Decay: Sendable, Equatable {
        case constant
        /// Linear from base to `final` at step `totalSteps`, then `final`.
        case linear(totalSteps: Int, final: Double)
        /// Cosine from base to `final` at step `totalSteps`, then `final`.
        case cosine(totalSteps: Int, final: Double)
        /// base · rate^(steps after warm-up).
        case exponential(rate: Double)
    }
    public var base: Double
    public var warmupSteps: Int
    public var decay: Decay

    public init(base: Double, warmupSteps: Int = 0, decay: Decay = .constant) {
        self.base = base
        self.warmupSteps = warmupSteps
        self.decay = decay
    }

    /// The rate at `step` (1-based).
    public func rate(at step: Int) -> Double {
        if step <= warmupSteps { return base * Double(step) / Double(warmupSteps) }
        let after = Double(step - warmupSteps)
        switch decay {
        case .constant: return base
        case .linear(let total, let final):
            let span = Double(Swift.max(1, total - warmupSteps))
            return base + (final - base) * Swift.min(1, after / span)
        case .cosine(let total, let final):
            let span = Double(Swift.max(1, total - warmupSteps))
            let x = Swift.min(1, after / span)
            return final + (base - final) * 0.5 * (1 + cos(.pi * x))
        case .exponential(let rate): return base * pow(rate, after)
        }
    }
}

/// A model the data-parallel trainer can train: dense parameters in one store, embedding
/// tables updated sparsely.
public protocol TrainableModel: AnyObject {
    associatedtype Scalar: Real
    associatedtype Batch
    var parameters: ParameterStore<Scalar> { get }
    var tables: [EmbeddingTable<Scalar>] { get }
    /// Forward and backward on this rank's examples of the step's global batch, with losses
    /// divided by `normalizer` (the global batch size). Adds dense gradients into `parameters`;
    /// returns this rank's loss share and one sparse gradient per table.
    func lossAndGradients(_ batch: Batch, normalizer: Scalar, step: Int) -> (loss: Double, sparse: [SparseRows<Scalar>])
    /// The same, calling `gradientsReady(range)` as soon as the dense gradients in `range` of
    /// `parameters` are final; the ranges are disjoint, each reported once, in the same order on
    /// every rank. The data-parallel trainer starts exchanging a bucket as soon as all of it has
    /// been reported (overlapping communication with the rest of backward), and drives the
    /// transfers in flight at each call. The default reports everything after backward.
    func lossAndGradients(
        _ batch: Batch, normalizer: Scalar, step: Int, gradientsReady: (Range<Int>) -> Void
    ) -> (loss: Double, sparse: [SparseRows<Scalar>])
}

extension TrainableModel {
    public func lossAndGradients(
        _ batch: Batch, normalizer: Scalar, step: Int, gradientsReady: (Range<Int>) -> Void
    ) -> (loss: Double, sparse: [SparseRows<Scalar>]) {
        let result = lossAndGradients(batch, normalizer: normalizer, step: step)
        gradientsReady(0..<parameters.count)
        return result
    }
}

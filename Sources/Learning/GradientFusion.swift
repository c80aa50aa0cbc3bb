import Collective

/// Fused gradient reduction (the role of Horovod's tensor fusion): the model's gradients are
/// one contiguous buffer, reduced in buckets of `bucketElements` (one MPI call each), summed
/// over ranks in place.
public struct GradientFusion: Sendable {
    /// Elements per allreduce call (default 1 Mi elements = 4 MiB of Float).
    public var bucketElements: Int

    public init(bucketElements: Int = 1 << 20) {
        precondition(bucketElements > 0, "GradientFusion: bucket size must be positive")
        self.bucketElements = bucketElements
    }

    /// Sums `buffer` over all ranks, in place.
    @_specialize(where T == Float)
    public func allreduceSum<T: Real>(_ buffer: UnsafeMutableBufferPointer<T>, comm: Communicator) throws {
        if comm.size == 1 { return }
        var offset = 0
        while offset < buffer.count {
            let n = Swift.min(bucketElements, buffer.count - offset)
            try comm.allreduce(UnsafeMutableBufferPointer(rebasing: buffer[offset..<offset + n]), op: .sum)
            offset += n
        }
    }
}

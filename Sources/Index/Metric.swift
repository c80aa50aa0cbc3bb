/// How vectors are compared.
///
/// Internally every search ranks by a *distance* where smaller is better: the squared L2
/// distance, or the negated inner product. Results are reported the way faiss reports them:
/// squared L2 distances (ascending) or inner products (descending).
public enum Metric: String, Sendable, CaseIterable {
    /// Squared Euclidean distance ‖x − y‖².
    case l2
    /// Inner product x · y (larger is closer; use unit vectors for cosine similarity).
    case innerProduct = "ip"

    /// Converts an internal distance (smaller is better) to the reported value.
    @inline(__always)
    func report(_ distance: Float) -> Float { self == .l2 ? distance : -distance }

    /// The reported value of a missing result (fewer than k candidates).
    var missing: Float { self == .l2 ? .infinity : -.infinity }
}

/// An error from the index: bad parameters or inputs, named with what was expected.
public struct IndexError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

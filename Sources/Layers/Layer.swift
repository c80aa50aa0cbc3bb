/// A differentiable map from one batch to another.
///
/// `forward` caches what `backward` needs (so call them in pairs); `backward` receives
/// dL/dy, accumulates dL/dθ into the parameter store's gradients (`+=`), and returns dL/dx.
public protocol Layer<Scalar>: AnyObject {
    associatedtype Scalar: Real
    /// y = f(x). x is (B, inputs), y is (B, outputs).
    func forward(_ x: Tensor<Scalar>) -> Tensor<Scalar>
    /// dL/dx from dL/dy (B, outputs); adds dL/dθ to the store's gradients.
    func backward(_ dy: Tensor<Scalar>) -> Tensor<Scalar>
}

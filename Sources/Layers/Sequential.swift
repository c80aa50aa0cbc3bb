/// Layers applied in order.
public final class Sequential<T: Real>: Layer {
    public let layers: [any Layer<T>]
    public init(_ layers: [any Layer<T>]) { self.layers = layers }

    @_specialize(where T == Float)
    public func forward(_ x: Tensor<T>) -> Tensor<T> {
        var h = x
        for layer in layers { h = layer.forward(h) }
        return h
    }

    @_specialize(where T == Float)
    public func backward(_ dy: Tensor<T>) -> Tensor<T> {
        var g = dy
        for layer in layers.reversed() { g = layer.backward(g) }
        return g
    }

    /// A multilayer perceptron `widths[0] → widths[1] → …` with `activation` after every linear
    /// layer except (when `finalActivation` is false) the last.
    public static func mlp(
        _ store: ParameterStore<T>, name: String, widths: [Int], activation: Activation<T>.Kind = .relu,
        finalActivation: Bool = true
    ) -> Sequential {
        var layers: [any Layer<T>] = []
        for i in 0..<widths.count - 1 {
            layers.append(Linear(store, name: "\(name).\(i)", inputs: widths[i], outputs: widths[i + 1]))
            if finalActivation || i < widths.count - 2 { layers.append(Activation(activation)) }
        }
        return Sequential(layers)
    }
}

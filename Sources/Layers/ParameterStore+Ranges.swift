extension ParameterStore {
    /// The smallest range of the buffer holding every tensor whose name starts with `prefix`
    /// (empty when none does). Tensors registered together (one layer) are contiguous, so this is
    /// the layer's slice of `values` / `grads`.
    public func range(prefix: String) -> Range<Int> {
        let matching = views.filter { $0.name.hasPrefix(prefix) }
        guard let low = matching.map(\.offset).min(), let high = matching.map({ $0.offset + $0.count }).max() else {
            return 0..<0
        }
        return low..<high
    }
}

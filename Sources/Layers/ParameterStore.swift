import Linalg

/// A named slice of a `ParameterStore`: `shape.product` values starting at `offset`.
public struct ParameterView: Sendable, Hashable {
    /// Unique name, e.g. `cross0.weight`.
    public let name: String
    /// First element in the store's flat buffer.
    public let offset: Int
    /// Shape (row-major), e.g. `[inputs, outputs]` for a linear weight.
    public let shape: [Int]
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
}

/// How a parameter starts.
public enum Initializer: Sendable {
    case zeros, ones
    /// Uniform in ±sqrt(6 / (fanIn + fanOut)) (Glorot).
    case glorot(fanIn: Int, fanOut: Int)
    /// N(0, std²).
    case normal(std: Double)
}

/// Every dense parameter of a model in one contiguous buffer, with a gradient buffer of the same
/// layout, so that the data-parallel gradient reduction is one call (or a few fused buckets)
/// instead of one per tensor (llm.c's and Horovod's tensor fusion).
///
/// Layers register their tensors while the model is built (`add`), then read and write them
/// through `value(_:)`/`grad(_:)` pointers. Memory: 2 × `count` scalars (values and grads).
/// Not thread-safe; one store per model instance.
public final class ParameterStore<T: Real> {
    /// Registered tensors, in registration order.
    public private(set) var views: [ParameterView] = []
    /// Total number of scalars.
    public private(set) var count = 0
    private var storage: UnsafeMutablePointer<T>
    private var gradStorage: UnsafeMutablePointer<T>
    private var capacity: Int
    /// Seed of the initial values (each tensor draws from stream `(seed, 0, tensor index)`).
    public let seed: UInt64

    public init(seed: UInt64 = 1) {
        self.seed = seed
        capacity = 1024
        storage = .allocate(capacity: capacity)
        gradStorage = .allocate(capacity: capacity)
    }

    deinit {
        storage.deallocate()
        gradStorage.deallocate()
    }

    /// Registers a tensor named `name` (unique) of `shape`, initialised by `initializer`.
    /// Pointers from `value`/`grad` taken before an `add` are invalid after it.
    @discardableResult
    @_specialize(where T == Float)
    public func add(_ name: String, shape: [Int], _ initializer: Initializer) -> ParameterView {
        precondition(!views.contains { $0.name == name }, "ParameterStore: duplicate parameter name \(name)")
        let view = ParameterView(name: name, offset: count, shape: shape)
        let needed = count + view.count
        if needed > capacity {
            var newCapacity = capacity
            while newCapacity < needed { newCapacity *= 2 }
            for keyPath in [0, 1] {
                let fresh = UnsafeMutablePointer<T>.allocate(capacity: newCapacity)
                let old = keyPath == 0 ? storage : gradStorage
                fresh.update(from: old, count: count)
                old.deallocate()
                if keyPath == 0 { storage = fresh } else { gradStorage = fresh }
            }
            capacity = newCapacity
        }
        var rng = RandomStream(seed: seed, rank: 0, index: UInt64(views.count))
        let p = storage + count
        for i in 0..<view.count {
            switch initializer {
            case .zeros: p[i] = 0
            case .ones: p[i] = 1
            case .glorot(let fanIn, let fanOut):
                let limit = (6.0 / Double(fanIn + fanOut)).squareRoot()
                p[i] = T((rng.uniform() * 2 - 1) * limit)
            case .normal(let std): p[i] = T(rng.normal() * std)
            }
        }
        (gradStorage + count).initialize(repeating: 0, count: view.count)
        views.append(view)
        count = needed
        return view
    }

    /// The view called `name`.
    public func view(named name: String) -> ParameterView? { views.first { $0.name == name } }

    /// Called with the range of values about to be read while some values are still arriving
    /// from other ranks (the data-parallel trainer leaves the allgather of a step's updated
    /// values in flight into the next forward, `TrainerConfig.gatherDuringForward`); it returns
    /// once those values are final. nil when every value is final. Every read through `value(_:)`,
    /// `values`, `valuesArray` and `setValues` passes through it, so a layer waits only for its
    /// own parameters and other readers (evaluation, checkpoints) always see final values.
    package var readFence: ((Range<Int>) -> Void)?

    /// Values of `view` (`view.count` scalars), final (see `readFence`).
    @inline(__always) public func value(_ view: ParameterView) -> UnsafeMutablePointer<T> {
        if let readFence { readFence(view.offset..<view.offset + view.count) }
        return storage + view.offset
    }
    /// Gradient of `view` (`view.count` scalars), accumulated by backward passes.
    @inline(__always) public func grad(_ view: ParameterView) -> UnsafeMutablePointer<T> { gradStorage + view.offset }

    /// All values, `count` scalars, final (see `readFence`).
    public var values: UnsafeMutableBufferPointer<T> {
        if let readFence { readFence(0..<count) }
        return unfencedValues
    }
    /// All values without waiting for values in flight (the trainer's own collectives and updates,
    /// which know which parts are final).
    package var unfencedValues: UnsafeMutableBufferPointer<T> {
        UnsafeMutableBufferPointer(start: storage, count: count)
    }
    /// All gradients, `count` scalars.
    public var grads: UnsafeMutableBufferPointer<T> { UnsafeMutableBufferPointer(start: gradStorage, count: count) }

    /// Sets every gradient to zero (before a step's backward passes, which accumulate).
    public func zeroGrads() {
        // All-zero bytes are 0.0 for IEEE floats; memset is much faster than a generic fill.
        UnsafeMutableRawPointer(gradStorage).initializeMemory(
            as: UInt8.self, repeating: 0, count: count * MemoryLayout<T>.stride)
    }

    /// Copies of the values, e.g. for checkpoints and tests.
    public func valuesArray() -> [T] { Array(values) }

    /// Replaces every value (`newValues.count == count`).
    public func setValues(_ newValues: [T]) {
        precondition(newValues.count == count, "ParameterStore: \(newValues.count) values for \(count) parameters")
        let target = values  // waits for values in flight, which would overwrite these
        newValues.withUnsafeBufferPointer { target.baseAddress!.update(from: $0.baseAddress!, count: count) }
    }

    /// A text description of the layout (`name offset d0xd1` per line), saved in checkpoints so a
    /// checkpoint can be checked against the model that loads it.
    public var layout: String {
        views.map { "\($0.name) \($0.offset) \($0.shape.map(String.init).joined(separator: "x"))" }.joined(
            separator: "\n")
    }
}

/// The element kinds a message can carry (MPI's predefined datatypes that Mosaic uses).
///
/// Naming the kind, not the MPI handle, keeps the scalar protocols free of MPI: the MPI-free
/// modules (the layers, the ranker's inference, serving) declare `Real: MPIScalar` without
/// linking an MPI library; `Collective` maps the kind to its `MPI_Datatype`.
public enum ScalarKind: Sendable, Equatable {
    case float32, float64, int32, int64, uint8, uint64
}

/// Element types that MPI can move and reduce (`Collective` maps `scalarKind` to the MPI
/// datatype).
public protocol MPIScalar: Sendable {
    /// The element's kind on the wire.
    static var scalarKind: ScalarKind { get }
}
extension Float: MPIScalar { public static var scalarKind: ScalarKind { .float32 } }
extension Double: MPIScalar { public static var scalarKind: ScalarKind { .float64 } }
extension Int32: MPIScalar { public static var scalarKind: ScalarKind { .int32 } }
extension Int64: MPIScalar { public static var scalarKind: ScalarKind { .int64 } }
extension UInt8: MPIScalar { public static var scalarKind: ScalarKind { .uint8 } }
extension UInt64: MPIScalar { public static var scalarKind: ScalarKind { .uint64 } }
extension Int: MPIScalar { public static var scalarKind: ScalarKind { .int64 } }

import CHDF5
import Foundation

/// An n-dimensional array stored in an HDF5 file.
///
/// Row access (`readRows`, `writeRows`, `append`) works on the first dimension through
/// hyperslab selections, so a rank can read just its rows of an array too large for memory.
public final class H5Dataset: H5Object, @unchecked Sendable {
    public let file: H5File
    public let path: String
    let id: hid_t
    public var handle: hid_t { id }

    init(file: H5File, id: hid_t, path: String) {
        self.file = file
        self.id = id
        self.path = path
    }

    deinit { HDF5.locked { _ = H5Dclose(id) } }

    /// About 1 MiB chunks of whole rows.
    static func defaultChunk(shape: [Int], elementSize: Int) -> [Int] {
        let rowElements = shape.dropFirst().reduce(1, *)
        let rows = Swift.max(1, (1 << 20) / Swift.max(1, rowElements * elementSize))
        return [Swift.max(1, Swift.min(rows, Swift.max(1, shape[0])))] + shape.dropFirst().map { Swift.max(1, $0) }
    }

    /// Current dimensions.
    public var shape: [Int] {
        HDF5.locked {
            let space = H5Dget_space(id)
            defer { H5Sclose(space) }
            let rank = Int(H5Sget_simple_extent_ndims(space))
            var dims = [hsize_t](repeating: 0, count: Swift.max(rank, 1))
            H5Sget_simple_extent_dims(space, &dims, nil)
            return dims.prefix(rank).map { Int($0) }
        }
    }

    /// Number of rows (first dimension; 1 for a scalar).
    public var rowCount: Int { shape.first ?? 1 }

    /// Elements per row (product of the trailing dimensions).
    public var rowWidth: Int { shape.dropFirst().reduce(1, *) }

    /// The stored element type's name (`float32`, `int64`, …, or a description of others).
    public var elementTypeName: String {
        HDF5.locked {
            let t = H5Dget_type(id)
            defer { H5Tclose(t) }
            for (candidate, name) in [
                (Float.h5Type, Float.h5Name), (Double.h5Type, Double.h5Name), (Int32.h5Type, Int32.h5Name),
                (Int64.h5Type, Int64.h5Name), (UInt8.h5Type, UInt8.h5Name),
            ] where H5Tequal(t, candidate) > 0 {
                return name
            }
            switch H5Tget_class(t) {
            case H5T_STRING: return "string"
            case H5T_INTEGER: return "integer(\(H5Tget_size(t)) bytes)"
            case H5T_FLOAT: return "float(\(H5Tget_size(t)) bytes)"
            default: return "other"
            }
        }
    }

    /// Throws unless the stored type is `T` and the shape matches (`nil` = any size).
    public func expect<T: H5Scalar>(_ type: T.Type, shape expected: [Int?]? = nil) throws {
        let stored = elementTypeName
        let actual = shape
        let typeOK = stored == T.h5Name
        var shapeOK = true
        if let expected {
            shapeOK =
                expected.count == actual.count
                && zip(expected, actual).allSatisfy { e, a in e == nil || e == a }
        }
        if !typeOK || !shapeOK {
            let want =
                expected.map { "(" + $0.map { $0.map(String.init) ?? "*" }.joined(separator: ", ") + ")" }
                ?? "any shape"
            throw ArtifactError(
                file: file.path, object: path,
                message:
                    "expected \(T.h5Name) \(want), found \(stored) (\(actual.map(String.init).joined(separator: ", ")))"
            )
        }
    }

    /// Writes the whole dataset from row-major `values`.
    public func write<T: H5Scalar>(_ values: [T]) throws {
        let count = shape.reduce(1, *)
        guard values.count == count else {
            throw ArtifactError(
                file: file.path, object: path, message: "write of \(values.count) values into \(count) elements")
        }
        try expect(T.self)
        if count == 0 { return }
        try HDF5.locked {
            let rc = values.withUnsafeBufferPointer {
                H5Dwrite(id, T.h5Type, mosaic_h5s_all(), mosaic_h5s_all(), mosaic_h5p_default(), $0.baseAddress)
            }
            if rc < 0 {
                throw ArtifactError(file: file.path, object: path, message: "write failed: \(HDF5.lastErrorDetail())")
            }
        }
    }

    /// Reads the whole dataset, row-major. The stored type must be `T`.
    public func read<T: H5Scalar>(as type: T.Type) throws -> [T] {
        try readRows(0..<rowCount, as: T.self)
    }

    /// Reads rows `range` of the first dimension (a hyperslab): `range.count * rowWidth`
    /// elements. Only those rows are read from disk.
    public func readRows<T: H5Scalar>(_ range: Range<Int>, as type: T.Type) throws -> [T] {
        try expect(T.self)
        let dims = shape
        let rows = dims.first ?? 1
        guard range.lowerBound >= 0, range.upperBound <= rows else {
            throw ArtifactError(file: file.path, object: path, message: "rows \(range) out of bounds for \(rows) rows")
        }
        let width = rowWidth
        var out = [T](unsafeUninitializedCapacity: range.count * width) { buf, n in
            if range.count * width > 0 { memset(buf.baseAddress!, 0, range.count * width * MemoryLayout<T>.stride) }
            n = range.count * width
        }
        if out.isEmpty { return out }
        try HDF5.locked {
            let fileSpace = H5Dget_space(id)
            defer { H5Sclose(fileSpace) }
            var memSpace: hid_t = mosaic_h5s_all()
            if !dims.isEmpty {
                var start = [hsize_t](repeating: 0, count: dims.count)
                var count = dims.map { hsize_t($0) }
                start[0] = hsize_t(range.lowerBound)
                count[0] = hsize_t(range.count)
                H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &start, nil, &count, nil)
                memSpace = H5Screate_simple(Int32(count.count), &count, nil)
            }
            defer { if memSpace != mosaic_h5s_all() { H5Sclose(memSpace) } }
            let rc = out.withUnsafeMutableBufferPointer {
                H5Dread(
                    id, T.h5Type, memSpace, dims.isEmpty ? mosaic_h5s_all() : fileSpace, mosaic_h5p_default(),
                    $0.baseAddress)
            }
            if rc < 0 {
                throw ArtifactError(
                    file: file.path, object: path,
                    message: "read of rows \(range) failed (truncated file?): \(HDF5.lastErrorDetail())")
            }
        }
        return out
    }

    /// Overwrites rows starting at `start` with `values` (a whole number of rows).
    public func writeRows<T: H5Scalar>(at start: Int, _ values: [T]) throws {
        try expect(T.self)
        let dims = shape
        let width = rowWidth
        guard !dims.isEmpty, width > 0 || values.isEmpty, values.count % Swift.max(1, width) == 0 else {
            throw ArtifactError(
                file: file.path, object: path, message: "\(values.count) values are not whole rows of width \(width)")
        }
        let n = width == 0 ? 0 : values.count / width
        guard start >= 0, start + n <= dims[0] else {
            throw ArtifactError(
                file: file.path, object: path, message: "rows \(start)..<\(start + n) out of bounds for \(dims[0]) rows"
            )
        }
        if n == 0 { return }
        try HDF5.locked {
            let fileSpace = H5Dget_space(id)
            defer { H5Sclose(fileSpace) }
            var offset = [hsize_t](repeating: 0, count: dims.count)
            var count = dims.map { hsize_t($0) }
            offset[0] = hsize_t(start)
            count[0] = hsize_t(n)
            H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &offset, nil, &count, nil)
            let memSpace = H5Screate_simple(Int32(count.count), &count, nil)
            defer { H5Sclose(memSpace) }
            let rc = values.withUnsafeBufferPointer {
                H5Dwrite(id, T.h5Type, memSpace, fileSpace, mosaic_h5p_default(), $0.baseAddress)
            }
            if rc < 0 {
                throw ArtifactError(
                    file: file.path, object: path, message: "write of rows failed: \(HDF5.lastErrorDetail())")
            }
        }
    }

    /// Appends whole rows to an extendable dataset (created with `extendable: true`).
    public func append<T: H5Scalar>(_ values: [T]) throws {
        let dims = shape
        let width = rowWidth
        guard !dims.isEmpty, width > 0, values.count % width == 0 else {
            throw ArtifactError(
                file: file.path, object: path, message: "\(values.count) values are not whole rows of width \(width)")
        }
        let old = dims[0]
        var newDims = dims.map { hsize_t($0) }
        newDims[0] = hsize_t(old + values.count / width)
        try HDF5.locked {
            if H5Dset_extent(id, &newDims) < 0 {
                throw ArtifactError(
                    file: file.path, object: path,
                    message: "cannot extend (created without extendable: true?): \(HDF5.lastErrorDetail())")
            }
        }
        try writeRows(at: old, values)
    }
}

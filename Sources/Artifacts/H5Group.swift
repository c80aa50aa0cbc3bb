import CHDF5
import Foundation

/// Something attributes hang on: a group or a dataset.
public protocol H5Object {
    /// The file this object lives in.
    var file: H5File { get }
    /// Its path inside the file, e.g. `/pins/embedding`.
    var path: String { get }
    /// The HDF5 handle (the file's id for the root group).
    var handle: hid_t { get }
}

/// A group inside an HDF5 file: a folder of datasets and groups.
public final class H5Group: H5Object, @unchecked Sendable {
    public let file: H5File
    public let path: String
    let id: hid_t  // -1 for the root group, which uses the file handle
    public var handle: hid_t { id < 0 ? file.id : id }

    init(file: H5File, id: hid_t, path: String) {
        self.file = file
        self.id = id
        self.path = path
    }

    deinit { if id >= 0 { HDF5.locked { _ = H5Gclose(id) } } }

    func childPath(_ name: String) -> String { path == "/" ? "/\(name)" : "\(path)/\(name)" }

    /// True when a link called `name` exists in this group.
    public func contains(_ name: String) -> Bool {
        HDF5.locked {
            let r = H5Lexists(handle, name, mosaic_h5p_default()) > 0
            if !r { H5Eclear2(mosaic_h5e_default()) }
            return r
        }
    }

    /// Creates the subgroup `name`.
    public func createGroup(_ name: String) throws -> H5Group {
        try HDF5.locked {
            let gid = H5Gcreate2(handle, name, mosaic_h5p_default(), mosaic_h5p_default(), mosaic_h5p_default())
            if gid < 0 {
                throw ArtifactError(
                    file: file.path, object: childPath(name), message: "cannot create group: \(HDF5.lastErrorDetail())")
            }
            return H5Group(file: file, id: gid, path: childPath(name))
        }
    }

    /// Opens the existing subgroup `name`.
    public func group(_ name: String) throws -> H5Group {
        try HDF5.locked {
            guard H5Lexists(handle, name, mosaic_h5p_default()) > 0 else {
                H5Eclear2(mosaic_h5e_default())
                throw ArtifactError(
                    file: file.path, object: childPath(name), message: "expected a group, found nothing")
            }
            let gid = H5Gopen2(handle, name, mosaic_h5p_default())
            if gid < 0 {
                throw ArtifactError(
                    file: file.path, object: childPath(name), message: "expected a group: \(HDF5.lastErrorDetail())")
            }
            return H5Group(file: file, id: gid, path: childPath(name))
        }
    }

    /// Creates a dataset of element type `T`.
    ///
    /// - Parameters:
    ///   - shape: dimensions, e.g. `[n, d]`.
    ///   - extendable: when true the first dimension may grow later (`append`); needs chunking.
    ///   - chunk: chunk dimensions; defaults to about 1 MiB row blocks when compression or
    ///     extension is asked for, otherwise contiguous storage.
    ///   - compression: gzip level 1–9 (with the shuffle filter), or nil for none.
    public func createDataset<T: H5Scalar>(
        _ name: String, of type: T.Type, shape: [Int], extendable: Bool = false, chunk: [Int]? = nil,
        compression: Int? = nil
    ) throws -> H5Dataset {
        let object = childPath(name)
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw ArtifactError(file: file.path, object: object, message: "negative shape \(shape)")
        }
        return try HDF5.locked {
            var dims = shape.map { hsize_t($0) }
            var maxDims = dims
            if extendable, !maxDims.isEmpty { maxDims[0] = mosaic_h5s_unlimited() }
            let space = H5Screate_simple(Int32(dims.count), &dims, &maxDims)
            guard space >= 0 else {
                throw ArtifactError(file: file.path, object: object, message: "cannot create dataspace \(shape)")
            }
            defer { H5Sclose(space) }
            let dcpl = H5Pcreate(mosaic_h5p_dataset_create())
            defer { H5Pclose(dcpl) }
            if !shape.isEmpty, chunk != nil || compression != nil || extendable {
                var chunkDims = (chunk ?? H5Dataset.defaultChunk(shape: shape, elementSize: MemoryLayout<T>.size))
                    .map { hsize_t(Swift.max(1, $0)) }
                guard chunkDims.count == shape.count else {
                    throw ArtifactError(
                        file: file.path, object: object,
                        message: "chunk \(chunk!) has a different rank from shape \(shape)")
                }
                H5Pset_chunk(dcpl, Int32(chunkDims.count), &chunkDims)
                if let level = compression {
                    H5Pset_shuffle(dcpl)
                    H5Pset_deflate(dcpl, UInt32(Swift.max(0, Swift.min(9, level))))
                }
            }
            let did = H5Dcreate2(handle, name, T.h5Type, space, mosaic_h5p_default(), dcpl, mosaic_h5p_default())
            if did < 0 {
                throw ArtifactError(
                    file: file.path, object: object, message: "cannot create dataset: \(HDF5.lastErrorDetail())")
            }
            return H5Dataset(file: file, id: did, path: object)
        }
    }

    /// Creates dataset `name` of shape `shape` holding `values` (row-major).
    @discardableResult
    public func write<T: H5Scalar>(
        _ name: String, _ values: [T], shape: [Int]? = nil, chunk: [Int]? = nil, compression: Int? = nil
    ) throws -> H5Dataset {
        let shape = shape ?? [values.count]
        guard shape.reduce(1, *) == values.count else {
            throw ArtifactError(
                file: file.path, object: childPath(name), message: "\(values.count) values do not fill shape \(shape)")
        }
        let ds = try createDataset(name, of: T.self, shape: shape, chunk: chunk, compression: compression)
        try ds.write(values)
        return ds
    }

    /// Opens dataset `name`.
    public func dataset(_ name: String) throws -> H5Dataset {
        let object = childPath(name)
        return try HDF5.locked {
            guard H5Lexists(handle, name, mosaic_h5p_default()) > 0 else {
                H5Eclear2(mosaic_h5e_default())
                throw ArtifactError(file: file.path, object: object, message: "expected a dataset, found nothing")
            }
            let did = H5Dopen2(handle, name, mosaic_h5p_default())
            if did < 0 {
                throw ArtifactError(
                    file: file.path, object: object, message: "expected a dataset: \(HDF5.lastErrorDetail())")
            }
            return H5Dataset(file: file, id: did, path: object)
        }
    }

    /// Opens dataset `name` and checks its element type and shape before anything is read.
    ///
    /// - Parameter shape: expected dimensions; nil entries match any size (e.g. `[nil, 64]`
    ///   for any number of 64-wide rows).
    public func dataset<T: H5Scalar>(_ name: String, of type: T.Type, shape: [Int?]) throws -> H5Dataset {
        let ds = try dataset(name)
        try ds.expect(T.self, shape: shape)
        return ds
    }

    /// Reads the whole dataset `name`, checking its element type.
    public func read<T: H5Scalar>(_ name: String, as type: T.Type) throws -> [T] {
        try dataset(name).read(as: T.self)
    }

    /// Names of the links in this group, sorted.
    public func names() throws -> [String] {
        try HDF5.locked {
            var info = H5G_info_t()
            if H5Gget_info(handle, &info) < 0 {
                throw ArtifactError(
                    file: file.path, object: path, message: "cannot list group: \(HDF5.lastErrorDetail())")
            }
            var out: [String] = []
            for i in 0..<info.nlinks {
                let size = H5Lget_name_by_idx(handle, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0, mosaic_h5p_default())
                guard size >= 0 else { continue }
                var buf = [CChar](repeating: 0, count: Int(size) + 1)
                H5Lget_name_by_idx(
                    handle, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buf, Int(size) + 1, mosaic_h5p_default())
                out.append(String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            return out.sorted()
        }
    }
}

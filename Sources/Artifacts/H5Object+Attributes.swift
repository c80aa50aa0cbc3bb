import CHDF5
import Foundation

/// Attributes: small named values on a group or dataset (schema version, producer, config).
/// Strings are stored as variable-length UTF-8, which h5py reads as `str`.
extension H5Object {
    func attributeObject(_ name: String) -> String { "\(path) attribute '\(name)'" }

    /// Sets (or replaces) a string attribute.
    public func setAttribute(_ name: String, _ value: String) throws {
        try HDF5.locked {
            try deleteAttributeIfPresent(name)
            let type = H5Tcopy(mosaic_h5t_c_s1())
            defer { H5Tclose(type) }
            H5Tset_size(type, mosaic_h5t_variable())
            H5Tset_cset(type, H5T_CSET_UTF8)
            let space = H5Screate(H5S_SCALAR)
            defer { H5Sclose(space) }
            let attr = H5Acreate2(handle, name, type, space, mosaic_h5p_default(), mosaic_h5p_default())
            guard attr >= 0 else { throw attributeError(name, "cannot create: \(HDF5.lastErrorDetail())") }
            defer { H5Aclose(attr) }
            let rc = value.withCString { cstr -> herr_t in
                var ptr: UnsafePointer<CChar>? = cstr
                return H5Awrite(attr, type, &ptr)
            }
            if rc < 0 { throw attributeError(name, "cannot write: \(HDF5.lastErrorDetail())") }
        }
    }

    /// Sets (or replaces) a numeric attribute holding one value.
    public func setAttribute<T: H5Scalar>(_ name: String, _ value: T) throws {
        try setAttribute(name, values: [value])
    }

    /// Sets (or replaces) a 1-D numeric attribute.
    public func setAttribute<T: H5Scalar>(_ name: String, values: [T]) throws {
        try HDF5.locked {
            try deleteAttributeIfPresent(name)
            var dims = [hsize_t(values.count)]
            let space = values.count == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, nil)
            defer { H5Sclose(space) }
            let attr = H5Acreate2(handle, name, T.h5Type, space, mosaic_h5p_default(), mosaic_h5p_default())
            guard attr >= 0 else { throw attributeError(name, "cannot create: \(HDF5.lastErrorDetail())") }
            defer { H5Aclose(attr) }
            let rc = values.withUnsafeBufferPointer { H5Awrite(attr, T.h5Type, $0.baseAddress) }
            if rc < 0 { throw attributeError(name, "cannot write: \(HDF5.lastErrorDetail())") }
        }
    }

    /// True when the attribute exists.
    public func hasAttribute(_ name: String) -> Bool {
        HDF5.locked { H5Aexists(handle, name) > 0 }
    }

    /// Reads a string attribute (variable- or fixed-length).
    public func stringAttribute(_ name: String) throws -> String {
        try HDF5.locked {
            let attr = try openAttribute(name)
            defer { H5Aclose(attr) }
            let type = H5Aget_type(attr)
            defer { H5Tclose(type) }
            guard H5Tget_class(type) == H5T_STRING else { throw attributeError(name, "expected a string") }
            if H5Tis_variable_str(type) > 0 {
                let memType = H5Tcopy(mosaic_h5t_c_s1())
                defer { H5Tclose(memType) }
                H5Tset_size(memType, mosaic_h5t_variable())
                H5Tset_cset(memType, H5Tget_cset(type))
                var ptr: UnsafeMutablePointer<CChar>? = nil
                guard H5Aread(attr, memType, &ptr) >= 0 else {
                    throw attributeError(name, "cannot read: \(HDF5.lastErrorDetail())")
                }
                defer { if let ptr { H5free_memory(ptr) } }
                return ptr.map { String(cString: $0) } ?? ""
            }
            let size = H5Tget_size(type)
            var buf = [UInt8](repeating: 0, count: size + 1)
            guard H5Aread(attr, type, &buf) >= 0 else {
                throw attributeError(name, "cannot read: \(HDF5.lastErrorDetail())")
            }
            return String(decoding: buf.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Reads a numeric attribute as an array, converting to `T` (HDF5 converts between numeric
    /// types, e.g. an int32 attribute read as Int64).
    public func numericAttribute<T: H5Scalar>(_ name: String, as type: T.Type) throws -> [T] {
        try HDF5.locked {
            let attr = try openAttribute(name)
            defer { H5Aclose(attr) }
            let ftype = H5Aget_type(attr)
            defer { H5Tclose(ftype) }
            let cls = H5Tget_class(ftype)
            guard cls == H5T_INTEGER || cls == H5T_FLOAT else {
                throw attributeError(name, "expected a number, found another type")
            }
            let space = H5Aget_space(attr)
            defer { H5Sclose(space) }
            let n = Int(H5Sget_simple_extent_npoints(space))
            var out = [T](unsafeUninitializedCapacity: n) { buf, c in
                if n > 0 { memset(buf.baseAddress!, 0, n * MemoryLayout<T>.stride) }
                c = n
            }
            let rc = out.withUnsafeMutableBufferPointer { H5Aread(attr, T.h5Type, $0.baseAddress) }
            if rc < 0 { throw attributeError(name, "cannot read as \(T.h5Name): \(HDF5.lastErrorDetail())") }
            return out
        }
    }

    /// Reads a one-value integer attribute.
    public func intAttribute(_ name: String) throws -> Int64 {
        let v = try numericAttribute(name, as: Int64.self)
        guard v.count == 1 else { throw attributeError(name, "expected one value, found \(v.count)") }
        return v[0]
    }

    /// Reads a one-value floating-point attribute.
    public func doubleAttribute(_ name: String) throws -> Double {
        let v = try numericAttribute(name, as: Double.self)
        guard v.count == 1 else { throw attributeError(name, "expected one value, found \(v.count)") }
        return v[0]
    }

    private func openAttribute(_ name: String) throws -> hid_t {
        guard H5Aexists(handle, name) > 0 else {
            H5Eclear2(mosaic_h5e_default())
            throw attributeError(name, "missing")
        }
        let attr = H5Aopen(handle, name, mosaic_h5p_default())
        guard attr >= 0 else { throw attributeError(name, "cannot open: \(HDF5.lastErrorDetail())") }
        return attr
    }

    private func deleteAttributeIfPresent(_ name: String) throws {
        if H5Aexists(handle, name) > 0, H5Adelete(handle, name) < 0 {
            throw attributeError(name, "cannot replace: \(HDF5.lastErrorDetail())")
        }
    }

    func attributeError(_ name: String, _ message: String) -> ArtifactError {
        ArtifactError(file: file.path, object: attributeObject(name), message: message)
    }
}

import Artifacts
import Collective
import Foundation

/// The HDF5 layout of an index (schema `mosaic.ivf`, version 1); h5py reads it directly.
///
/// Root attributes: `schema` = "mosaic.ivf", `schema_version` = 1, `kind` = "IVFFlat" or
/// "IVFPQ", `metric` = "l2" or "ip", `d`, `nlist`, `m` (0 for IVF-Flat), `nbits` = 8,
/// `ntotal`, `keep_vectors` (0/1), `producer`.
/// Datasets: `centroids` float32 (nlist, d); `list_offsets` int64 (nlist + 1), list l holding
/// rows `list_offsets[l] ..< list_offsets[l + 1]` of `ids` int64 (ntotal), `vectors` float32
/// (ntotal, d) (IVF-Flat, or IVF-PQ with kept vectors), `codes` uint8 (ntotal, m) and
/// `pq_centroids` float32 (m, 256, d / m) (IVF-PQ). Lists are stored in list-id order, so a
/// serving shard that owns a contiguous range of lists reads one hyperslab per dataset.
extension IVFIndex {
    public static let schema = "mosaic.ivf"
    public static let schemaVersion: Int64 = 1

    /// Writes the index (all shards) to `path`. Collective: rank 0 creates the file under a
    /// temporary name, each shard writes its rows in turn, then rank 0 renames it into place,
    /// so a reader never sees a half-written index.
    public func save(to path: String, comm: Communicator, producer: String = "mosaic") throws {
        guard isTrained else { throw IndexError("save: the index is not trained") }
        var sizes = (0..<nlist).map { ownedLists.contains($0) ? Int64(lists[$0].count) : 0 }
        try comm.allreduce(&sizes)
        var offsets = [Int64](repeating: 0, count: nlist + 1)
        for l in 0..<nlist { offsets[l + 1] = offsets[l] + sizes[l] }
        let ntotal = Int(offsets[nlist])
        let tmp = path + ".tmp"
        if comm.isRoot {
            let file = try H5File(path: tmp, mode: .create)
            let root = file.root
            try root.setAttribute("schema", Self.schema)
            try root.setAttribute("schema_version", Self.schemaVersion)
            try root.setAttribute("kind", m == 0 ? "IVFFlat" : "IVFPQ")
            try root.setAttribute("metric", metric.rawValue)
            try root.setAttribute("d", Int64(d))
            try root.setAttribute("nlist", Int64(nlist))
            try root.setAttribute("m", Int64(m))
            try root.setAttribute("nbits", Int64(8))
            try root.setAttribute("ntotal", Int64(ntotal))
            try root.setAttribute("keep_vectors", Int64(parameters.keepVectors ? 1 : 0))
            try root.setAttribute("producer", producer)
            try root.write("centroids", centroids, shape: [nlist, d])
            try root.write("list_offsets", offsets, shape: [nlist + 1])
            // Chunked storage: a shard's write allocates only its own chunks, where contiguous
            // storage would be allocated and zero-filled in full by the first partial write.
            // About 16384 rows per chunk, sized so that the last chunk is nearly full.
            let chunks = Swift.max(1, (ntotal + 16383) / 16384)
            let rowsPerChunk = Swift.max(1, (ntotal + chunks - 1) / chunks)
            func chunk(_ width: Int?) -> [Int]? {
                ntotal == 0 ? nil : (width.map { [rowsPerChunk, $0] } ?? [rowsPerChunk])
            }
            _ = try root.createDataset("ids", of: Int64.self, shape: [ntotal], chunk: chunk(nil))
            if storesVectors {
                _ = try root.createDataset("vectors", of: Float.self, shape: [ntotal, d], chunk: chunk(d))
            }
            if let pq {
                try root.write("pq_centroids", pq.centroids, shape: [m, ProductQuantizer.ksub, pq.dsub])
                _ = try root.createDataset("codes", of: UInt8.self, shape: [ntotal, m], chunk: chunk(m))
            }
            try file.flush()
        }
        // Shards write their contiguous row ranges one after another (serial HDF5).
        for r in 0..<comm.size {
            try comm.barrier()
            guard r == comm.rank else { continue }
            let owned = ownedLists
            let rows = owned.reduce(0) { $0 + lists[$1].count }
            if rows == 0 { continue }
            let first = Int(offsets[owned.lowerBound])
            let file = try H5File(path: tmp, mode: .readWrite)
            try file.root.dataset("ids").writeRows(at: first, concatenated(owned, \.ids, rows))
            if storesVectors {
                try file.root.dataset("vectors").writeRows(at: first, concatenated(owned, \.vectors, rows * d))
            }
            if m > 0 { try file.root.dataset("codes").writeRows(at: first, concatenated(owned, \.codes, rows * m)) }
            try file.flush()
        }
        try comm.barrier()
        if comm.isRoot {
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: tmp, toPath: path)
        }
        try comm.barrier()
    }

    /// The lists `range`'s arrays at `field`, end to end (`count` elements).
    private func concatenated<T>(_ range: Range<Int>, _ field: KeyPath<InvertedList, [T]>, _ count: Int) -> [T] {
        var out: [T] = []
        out.reserveCapacity(count)
        for l in range { out.append(contentsOf: lists[l][keyPath: field]) }
        return out
    }

    /// Loads this rank's shard of the index at `path`: lists are split into `comm.size`
    /// contiguous ranges balanced by size and each rank reads only its range. Collective only in
    /// that every rank calls it; no communication.
    public static func load(from path: String, comm: Communicator) throws -> IVFIndex {
        try load(from: path, shard: comm.rank, of: comm.size)
    }

    /// Loads shard `shard` of `shards` (balanced contiguous list ranges; `0 of 1` = everything).
    /// Only that shard's rows are read (hyperslabs); the centroids are always read in full.
    public static func load(from path: String, shard: Int = 0, of shards: Int = 1) throws -> IVFIndex {
        guard shards >= 1, shard >= 0, shard < shards else {
            throw IndexError("load: shard \(shard) of \(shards) is invalid")
        }
        let file = try H5File(path: path, mode: .read)
        let root = file.root
        func fail(_ object: String, _ message: String) -> ArtifactError {
            ArtifactError(file: path, object: object, message: message)
        }
        func attrError(_ name: String, _ expected: String, _ found: String) -> ArtifactError {
            fail("/ attribute '\(name)'", "expected \(expected), found \(found)")
        }
        guard root.hasAttribute("schema") else {
            throw fail("/ attribute 'schema'", "expected \"\(schema)\", found no attribute (not a Mosaic IVF index)")
        }
        let foundSchema = try root.stringAttribute("schema")
        guard foundSchema == schema else { throw attrError("schema", "\"\(schema)\"", "\"\(foundSchema)\"") }
        let version = try root.intAttribute("schema_version")
        guard version == schemaVersion else { throw attrError("schema_version", "\(schemaVersion)", "\(version)") }
        let kind = try root.stringAttribute("kind")
        guard kind == "IVFFlat" || kind == "IVFPQ" else {
            throw attrError("kind", "\"IVFFlat\" or \"IVFPQ\"", "\"\(kind)\"")
        }
        let metricName = try root.stringAttribute("metric")
        guard let metric = Metric(rawValue: metricName) else {
            throw attrError("metric", "\"l2\" or \"ip\"", "\"\(metricName)\"")
        }
        let d = Int(try root.intAttribute("d")), nlist = Int(try root.intAttribute("nlist"))
        let m = Int(try root.intAttribute("m")), ntotal = Int(try root.intAttribute("ntotal"))
        let keep = try root.intAttribute("keep_vectors") != 0
        guard d > 0 else { throw attrError("d", "a positive dimension", "\(d)") }
        guard nlist > 0 else { throw attrError("nlist", "a positive list count", "\(nlist)") }
        guard ntotal >= 0 else { throw attrError("ntotal", "≥ 0", "\(ntotal)") }
        guard (kind == "IVFFlat") == (m == 0), m >= 0, m == 0 || d % m == 0 else {
            throw attrError("m", kind == "IVFFlat" ? "0 for IVFFlat" : "a divisor of d=\(d) for IVFPQ", "\(m)")
        }
        var index = try IVFIndex(
            d: d, parameters: IVFParameters(nlist: nlist, metric: metric, pqM: m, keepVectors: keep))
        try index.setCentroids(try root.dataset("centroids", of: Float.self, shape: [nlist, d]).read(as: Float.self))
        let offsets = try root.dataset("list_offsets", of: Int64.self, shape: [nlist + 1]).read(as: Int64.self)
        for l in 0..<nlist where offsets[l + 1] < offsets[l] {
            throw fail(
                "/list_offsets",
                "expected non-decreasing offsets, found \(offsets[l]) then \(offsets[l + 1]) at list \(l)")
        }
        guard offsets[0] == 0, offsets[nlist] == Int64(ntotal) else {
            throw fail(
                "/list_offsets", "expected offsets from 0 to ntotal=\(ntotal), found \(offsets[0]) … \(offsets[nlist])")
        }
        let idsSet = try root.dataset("ids", of: Int64.self, shape: [ntotal])
        let vectorSet = index.storesVectors ? try root.dataset("vectors", of: Float.self, shape: [ntotal, d]) : nil
        var codeSet: H5Dataset?
        if m > 0 {
            let pqc = try root.dataset("pq_centroids", of: Float.self, shape: [m, ProductQuantizer.ksub, d / m]).read(
                as: Float.self)
            try index.setPQ(try ProductQuantizer(d: d, m: m, centroids: pqc))
            codeSet = try root.dataset("codes", of: UInt8.self, shape: [ntotal, m])
        }
        let sizes = (0..<nlist).map { Int(offsets[$0 + 1] - offsets[$0]) }
        let bounds = balancedBounds(sizes, parts: shards)
        index.listBounds = bounds
        index.shard = shard
        index.shardCount = shards
        let lo = Int(offsets[bounds[shard]]), hi = Int(offsets[bounds[shard + 1]])
        let ids = try idsSet.readRows(lo..<hi, as: Int64.self)
        let vectors = try vectorSet?.readRows(lo..<hi, as: Float.self) ?? []
        let codes = try codeSet?.readRows(lo..<hi, as: UInt8.self) ?? []
        for l in bounds[shard]..<bounds[shard + 1] {
            let a = Int(offsets[l]) - lo, b = Int(offsets[l + 1]) - lo
            if a == b { continue }
            index.lists[l].ids = Array(ids[a..<b])
            for (pos, id) in index.lists[l].ids.enumerated() {
                if index.idMap.updateValue(UInt64(l) << 32 | UInt64(pos), forKey: id) != nil {
                    throw fail("/ids", "expected unique ids, found \(id) twice (row \(lo + a + pos))")
                }
            }
            if index.storesVectors {
                index.lists[l].vectors = Array(vectors[(a * d)..<(b * d)])
                index.lists[l].norms = Distances.squaredNorms(index.lists[l].vectors, n: b - a, d: d)
            }
            if m > 0 { index.lists[l].codes = Array(codes[(a * m)..<(b * m)]) }
        }
        index.isTrained = true
        return index
    }
}

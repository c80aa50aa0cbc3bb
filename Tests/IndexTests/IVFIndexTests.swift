import Artifacts
import Collective
import Foundation
import Index
import Testing
import _TestSupport

@Suite("IVF index (one rank)")
struct IVFIndexTests {
    static let d = 16

    func build(
        _ x: [Float], ids: [Int64]? = nil, nlist: Int = 16, metric: Metric = .l2, pqM: Int = 0,
        keepVectors: Bool = false
    ) throws -> IVFIndex {
        let km = KMeansParameters(iterations: 10, initialization: .random)
        // PQ: 256 centroids per sub-quantiser; a small sample keeps the debug-build test fast.
        let pqKM = KMeansParameters(iterations: 6, seed: 4321, maxPointsPerCentroid: 8, initialization: .random)
        var index = try IVFIndex(
            d: Self.d,
            parameters: IVFParameters(
                nlist: nlist, metric: metric, pqM: pqM, keepVectors: keepVectors,
                kmeans: km, pqKMeans: pqKM))
        try index.train(x, comm: world())
        try index.add(x, ids: ids ?? (0..<Int64(x.count / Self.d)).map { $0 * 3 + 1 }, comm: world())
        return index
    }

    @Test("IVF-Flat with nprobe = nlist equals exact search", arguments: Metric.allCases)
    func flatExhaustiveIsExact(metric: Metric) throws {
        let d = Self.d
        let x = clustered(n: 3000, d: d, clusters: 30, noise: 0.6, normalise: metric == .innerProduct)
        let ids = (0..<Int64(3000)).map { $0 * 3 + 1 }
        let q = clustered(n: 60, d: d, clusters: 30, noise: 0.6, seed: 99, normalise: metric == .innerProduct)
        let index = try build(x, ids: ids, metric: metric)
        #expect(index.count == 3000)
        let approx = try index.search(q, k: 10, parameters: SearchParameters(nprobe: 16))
        let exact = ExactSearch.search(base: x, ids: ids, queries: q, d: d, k: 10, metric: metric)
        #expect(ExactSearch.recall(found: approx.labels, kFound: 10, truth: exact.labels, kTruth: 10, k: 10) == 1.0)
        for i in approx.distances.indices { #expect(abs(approx.distances[i] - exact.distances[i]) < 1e-3) }
        // Fewer lists probed: recall may drop, never above exact.
        let one = try index.search(q, k: 10, parameters: SearchParameters(nprobe: 1))
        #expect(ExactSearch.recall(found: one.labels, kFound: 10, truth: exact.labels, kTruth: 10, k: 10) <= 1.0)
    }

    @Test("threads and query blocks do not change results")
    func threadsAgree() throws {
        let x = clustered(n: 2000, d: Self.d, clusters: 20)
        let q = clustered(n: 300, d: Self.d, clusters: 20, seed: 5)
        let index = try build(x)
        let a = try index.search(q, k: 5, parameters: SearchParameters(nprobe: 4))
        let b = try index.search(q, k: 5, parameters: SearchParameters(nprobe: 4, threads: 3, queryBlock: 37))
        #expect(a.labels == b.labels)
        // Different block shapes change sgemm's summation order: last-bit differences only.
        #expect(zip(a.distances, b.distances).allSatisfy { abs($0 - $1) <= 1e-4 * Swift.max(1, abs($0)) })
    }

    @Test("IVF-PQ recall rises with m; exact re-ranking raises it further")
    func pqRecallRisesWithM() throws {
        let d = Self.d
        let x = clustered(n: 4000, d: d, clusters: 40, noise: 0.5)
        let q = clustered(n: 100, d: d, clusters: 40, noise: 0.5, seed: 123)
        let exact = ExactSearch.search(base: x, queries: q, d: d, k: 10).labels
        var recalls: [Double] = []
        for m in [2, 4, 8] {
            let index = try build(x, ids: (0..<4000).map(Int64.init), nlist: 8, pqM: m, keepVectors: m == 8)
            let r = try index.search(q, k: 10, parameters: SearchParameters(nprobe: 8))
            recalls.append(ExactSearch.recall(found: r.labels, kFound: 10, truth: exact, kTruth: 10, k: 10))
            if m == 8 {
                let refined = try index.search(q, k: 10, parameters: SearchParameters(nprobe: 8, refineFactor: 10))
                let rr = ExactSearch.recall(found: refined.labels, kFound: 10, truth: exact, kTruth: 10, k: 10)
                #expect(rr > recalls.last!, "refined \(rr) vs ADC \(recalls.last!)")
                #expect(rr > 0.95)
            }
        }
        #expect(recalls[0] < recalls[1] && recalls[1] < recalls[2], "recall by m = 2, 4, 8: \(recalls)")
    }

    @Test("IVF-PQ with inner product: ADC finds neighbours, re-ranking makes them exact")
    func pqInnerProduct() throws {
        let d = Self.d
        let x = clustered(n: 3000, d: d, clusters: 30, noise: 0.4, normalise: true)
        let q = clustered(n: 60, d: d, clusters: 30, noise: 0.4, seed: 21, normalise: true)
        let exact = ExactSearch.search(base: x, queries: q, d: d, k: 10, metric: .innerProduct)
        let index = try build(
            x, ids: (0..<3000).map(Int64.init), nlist: 8, metric: .innerProduct, pqM: 8, keepVectors: true)
        let adc = try index.search(q, k: 10, parameters: SearchParameters(nprobe: 8))
        let refined = try index.search(q, k: 10, parameters: SearchParameters(nprobe: 8, refineFactor: 20))
        let ra = ExactSearch.recall(found: adc.labels, kFound: 10, truth: exact.labels, kTruth: 10, k: 10)
        let rr = ExactSearch.recall(found: refined.labels, kFound: 10, truth: exact.labels, kTruth: 10, k: 10)
        #expect(ra > 0.3 && rr > 0.97 && rr >= ra, "ADC \(ra), refined \(rr)")
        // Inner products are reported descending.
        for i in 0..<60 {
            for j in 1..<10 { #expect(refined.distances[i * 10 + j - 1] >= refined.distances[i * 10 + j]) }
        }
    }

    @Test("vectors added later are found without retraining; removed ids disappear without a scan")
    func addAndRemove() throws {
        let d = Self.d
        let x = clustered(n: 3000, d: d, clusters: 30)
        let ids = (0..<Int64(3000)).map { $0 + 1000 }
        let q = clustered(n: 50, d: d, clusters: 30, seed: 77)
        var index = try build(rows(x, 0..<2000, d: d), ids: Array(ids[0..<2000]))
        try index.add(rows(x, 2000..<3000, d: d), ids: Array(ids[2000..<3000]), comm: world())
        #expect(index.count == 3000)
        let full = try index.search(q, k: 10, parameters: SearchParameters(nprobe: 16))
        #expect(full.labels == ExactSearch.search(base: x, ids: ids, queries: q, d: d, k: 10).labels)

        let gone = Array(ids[0..<3000].filter { $0 % 3 == 0 })
        #expect(try index.remove(ids: gone, comm: world()) == gone.count)
        #expect(index.remove(ids: gone) == 0)
        #expect(index.count == 3000 - gone.count)
        let keep = (0..<3000).filter { ids[$0] % 3 != 0 }
        let after = try index.search(q, k: 10, parameters: SearchParameters(nprobe: 16))
        let exactAfter = ExactSearch.search(
            base: keep.flatMap { rows(x, $0..<$0 + 1, d: d) }, ids: keep.map { ids[$0] },
            queries: q, d: d, k: 10)
        #expect(after.labels == exactAfter.labels)
        #expect(!after.labels.contains { $0 % 3 == 0 })
        let error = #expect(throws: IndexError.self) {
            try index.add(rows(x, 1..<2, d: d), ids: [ids[1]], comm: world())
        }
        #expect(error?.description.contains("already in the index") == true)
    }

    @Test("sortListsById gives the same lists whatever the add order and batching")
    func canonicalOrder() throws {
        let d = Self.d
        let x = clustered(n: 1200, d: d, clusters: 12)
        let ids = (0..<Int64(1200)).map { ($0 * 37) % 1200 }
        var trained = try IVFIndex(d: d, parameters: IVFParameters(nlist: 16, kmeans: KMeansParameters(iterations: 5)))
        try trained.train(x, comm: world())
        var a = trained, b = trained  // value copies of one trained index
        try a.add(x, ids: ids, comm: world())
        try b.add(rows(x, 600..<1200, d: d), ids: Array(ids[600..<1200]), comm: world())
        try b.add(rows(x, 0..<600, d: d), ids: Array(ids[0..<600]), comm: world())
        _ = b.remove(ids: Array(ids[0..<50]))
        try b.add(rows(x, 0..<50, d: d), ids: Array(ids[0..<50]), comm: world())
        #expect(a.ids(inList: 0) != b.ids(inList: 0) || a.ids(inList: 1) != b.ids(inList: 1))
        a.sortListsById()
        b.sortListsById()
        for l in 0..<a.nlist {
            #expect(a.ids(inList: l) == b.ids(inList: l))
            #expect(a.ids(inList: l) == a.ids(inList: l).sorted())
        }
        let q = clustered(n: 20, d: d, clusters: 12, seed: 3)
        #expect(try a.search(q, k: 5).labels == b.search(q, k: 5).labels)
    }

    @Test("HDF5 round trip keeps search results; shards load only their lists", arguments: [0, 4])
    func roundTrip(pqM: Int) throws {
        let dir = try MPIRun.temporaryDirectory("ivf-roundtrip")
        defer { try? FileManager.default.removeItem(at: dir) }
        let x = clustered(n: 2500, d: Self.d, clusters: 25)
        let q = clustered(n: 40, d: Self.d, clusters: 25, seed: 8)
        let index = try build(x, pqM: pqM)
        let path = dir.appendingPathComponent("index.h5").path
        try index.save(to: path, comm: world())
        let loaded = try IVFIndex.load(from: path)
        #expect(loaded.count == index.count && loaded.m == pqM && loaded.nlist == 16)
        let p = SearchParameters(nprobe: 5)
        let a = try index.search(q, k: 10, parameters: p), b = try loaded.search(q, k: 10, parameters: p)
        #expect(a.labels == b.labels)
        #expect(a.distances == b.distances)
        // Two serving shards: disjoint list ranges that cover everything, merged = whole.
        let s0 = try IVFIndex.load(from: path, shard: 0, of: 2), s1 = try IVFIndex.load(from: path, shard: 1, of: 2)
        #expect(s0.ownedLists.upperBound == s1.ownedLists.lowerBound && s1.ownedLists.upperBound == 16)
        #expect(s0.count + s1.count == index.count && s0.count > 0 && s1.count > 0)
        let r0 = try s0.search(q, k: 10, parameters: p), r1 = try s1.search(q, k: 10, parameters: p)
        for i in 0..<40 {
            let merged =
                (0..<10).map { (r0.distances[i * 10 + $0], r0.labels[i * 10 + $0]) }
                + (0..<10).map { (r1.distances[i * 10 + $0], r1.labels[i * 10 + $0]) }
            let best = merged.filter { $0.1 >= 0 }.sorted { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }.prefix(10)
                .map(\.1)
            #expect(Array(best) == Array(a.labels[(i * 10)..<(i * 10 + 10)]))
        }
        // h5py-readable layout.
        let file = try H5File(path: path, mode: .read)
        #expect(try file.root.stringAttribute("schema") == "mosaic.ivf")
        #expect(try file.root.dataset("ids").shape == [2500])
    }

    @Test("corrupt or mismatched index files give a clear error naming file, object, expected and found")
    func corruptFiles() throws {
        let dir = try MPIRun.temporaryDirectory("ivf-corrupt")
        defer { try? FileManager.default.removeItem(at: dir) }
        let index = try build(clustered(n: 500, d: Self.d, clusters: 5), nlist: 4)
        let good = dir.appendingPathComponent("good.h5").path
        try index.save(to: good, comm: world())

        func variant(_ name: String, _ edit: (H5File) throws -> Void) throws -> String {
            let path = dir.appendingPathComponent(name).path
            try FileManager.default.copyItem(atPath: good, toPath: path)
            try edit(try H5File(path: path, mode: .readWrite))
            return path
        }
        func message(_ path: String) -> String {
            do {
                _ = try IVFIndex.load(from: path)
                return "loaded"
            } catch { return "\(error)" }
        }

        let garbage = dir.appendingPathComponent("garbage.h5").path
        try Data(repeating: 0x42, count: 4096).write(to: URL(fileURLWithPath: garbage))
        #expect(message(garbage).contains(garbage) && message(garbage).contains("not a readable HDF5 file"))

        let truncated = dir.appendingPathComponent("truncated.h5").path
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        #expect(message(truncated).contains(truncated), "\(message(truncated))")
        #expect(message(truncated) != "loaded")

        let version = try variant("version.h5") { try $0.root.setAttribute("schema_version", Int64(7)) }
        #expect(
            message(version).contains("schema_version") && message(version).contains("expected 1, found 7"),
            "\(message(version))")

        let dim = try variant("dim.h5") { try $0.root.setAttribute("d", Int64(8)) }
        #expect(
            message(dim).contains("/centroids") && message(dim).contains("expected float32 (4, 8)"), "\(message(dim))")

        let offsets = try variant("offsets.h5") { f in
            let ds = try f.root.dataset("list_offsets")
            try ds.writeRows(at: 2, [Int64(1)])
        }
        #expect(
            message(offsets).contains("/list_offsets") && message(offsets).contains("expected non-decreasing"),
            "\(message(offsets))")

        let kind = try variant("kind.h5") { try $0.root.setAttribute("m", Int64(4)) }
        #expect(message(kind).contains("attribute 'm'") && message(kind).contains("0 for IVFFlat"), "\(message(kind))")

        let wrong = dir.appendingPathComponent("other.h5").path
        let f = try H5File(path: wrong, mode: .create)
        try f.root.write("x", [Float(1)])
        #expect(message(wrong).contains("not a Mosaic IVF index"), "\(message(wrong))")

        #expect(throws: IndexError.self) { _ = try index.search([Float](repeating: 0, count: 7), k: 3) }
    }
}

import Artifacts
import Collective
import Foundation
import Publishing
import Testing
import _TestSupport

@Suite("Artifacts (HDF5)")
struct ArtifactsTests {
    let dir: URL
    init() throws { dir = try MPIRun.temporaryDirectory("artifacts") }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func roundTrip<T: H5Scalar & Equatable>(_ type: T.Type, _ make: (Int) -> T) throws {
        let p = path("rt-\(T.h5Name).h5")
        let shapes: [[Int]] = [[0], [1], [7], [3, 4], [2, 3, 5], [0, 8], [1, 1, 1, 1]]
        do {
            let f = try H5File(path: p, mode: .create)
            for (i, shape) in shapes.enumerated() {
                let n = shape.reduce(1, *)
                try f.root.write("d\(i)", (0..<n).map(make), shape: shape)
                try f.root.write("c\(i)", (0..<n).map(make), shape: shape, compression: 6)
            }
        }
        let f = try H5File(path: p, mode: .read)
        for (i, shape) in shapes.enumerated() {
            let n = shape.reduce(1, *)
            for name in ["d\(i)", "c\(i)"] {
                let ds = try f.root.dataset(name, of: T.self, shape: shape.map { $0 })
                #expect(ds.shape == shape)
                #expect(try ds.read(as: T.self) == (0..<n).map(make), "\(T.h5Name) \(shape)")
            }
        }
    }

    @Test("every element type round-trips at every shape, plain and compressed")
    func typesAndShapes() throws {
        try roundTrip(Float.self) { Float($0) * 0.25 - 3 }
        try roundTrip(Double.self) { Double($0) / 7 }
        try roundTrip(Int32.self) { Int32($0) - 50 }
        try roundTrip(Int64.self) { Int64($0) << 35 }
        try roundTrip(UInt8.self) { UInt8($0 % 256) }
    }

    @Test("attributes: strings (UTF-8), numbers, arrays, replacement; groups nest")
    func attributes() throws {
        let p = path("attrs.h5")
        do {
            let f = try H5File(path: p, mode: .create)
            let g = try f.root.createGroup("model")
            let sub = try g.createGroup("layers")
            try sub.write("w", [Float(1), 2], shape: [2])
            try g.setAttribute("name", "ranker — v1")
            try g.setAttribute("version", Int64(3))
            try g.setAttribute("version", Int64(4))
            try g.setAttribute("lr", 0.001)
            try g.setAttribute("sizes", values: [Int32(256), 128])
            try f.root.setAttribute("schema_version", Int64(1))
        }
        let f = try H5File(path: p, mode: .read)
        let g = try f.root.group("model")
        #expect(try g.stringAttribute("name") == "ranker — v1")
        #expect(try g.intAttribute("version") == 4)
        #expect(try g.doubleAttribute("lr") == 0.001)
        #expect(try g.numericAttribute("sizes", as: Int64.self) == [256, 128])
        #expect(try f.root.names() == ["model"])
        #expect(try g.names() == ["layers"])
        #expect(try g.group("layers").read("w", as: Float.self) == [1, 2])
        #expect(g.hasAttribute("name") && !g.hasAttribute("nope"))
        let e = #expect(throws: ArtifactError.self) { _ = try g.stringAttribute("nope") }
        #expect(e?.description.contains("attribute 'nope'") == true)
        #expect(throws: ArtifactError.self) { _ = try g.stringAttribute("version") }
    }

    @Test("hyperslab reads and writes of rows, and appends to an extendable dataset")
    func hyperslabs() throws {
        let p = path("rows.h5")
        let n = 10_000, d = 16
        let values = (0..<n * d).map { Float($0) }
        do {
            let f = try H5File(path: p, mode: .create)
            try f.root.write("x", values, shape: [n, d], chunk: [512, d], compression: 1)
            let e = try f.root.createDataset("grow", of: Int64.self, shape: [0, 2], extendable: true)
            try e.append([Int64(1), 2, 3, 4])
            try e.append([Int64(5), 6])
        }
        let f = try H5File(path: p, mode: .readWrite)
        let x = try f.root.dataset("x", of: Float.self, shape: [nil, d])
        #expect(try x.readRows(1234..<1240, as: Float.self) == Array(values[(1234 * d)..<(1240 * d)]))
        #expect(try x.readRows(n - 1..<n, as: Float.self) == Array(values[((n - 1) * d)...]))
        #expect(try x.readRows(5..<5, as: Float.self).isEmpty)
        try x.writeRows(at: 2, [Float](repeating: -1, count: d))
        #expect(try x.readRows(2..<3, as: Float.self) == [Float](repeating: -1, count: d))
        #expect(throws: ArtifactError.self) { _ = try x.readRows(n - 1..<n + 1, as: Float.self) }
        let grow = try f.root.dataset("grow", of: Int64.self, shape: [3, 2])
        #expect(try grow.read(as: Int64.self) == [1, 2, 3, 4, 5, 6])
        #expect(throws: ArtifactError.self) { try x.append([Float](repeating: 0, count: d)) }
    }

    @Test("missing, truncated, non-HDF5 and wrong-schema files give errors naming file, dataset and expectation")
    func errors() throws {
        let missing = path("nope.h5")
        let e1 = #expect(throws: ArtifactError.self) { _ = try H5File(path: missing, mode: .read) }
        #expect(e1?.file == missing && e1?.message.contains("does not exist") == true)

        let text = path("text.h5")
        try "not hdf5".write(toFile: text, atomically: true, encoding: .utf8)
        let e2 = #expect(throws: ArtifactError.self) { _ = try H5File(path: text, mode: .read) }
        #expect(e2?.message.contains("not a readable HDF5 file") == true)

        let good = path("good.h5")
        do {
            let f = try H5File(path: good, mode: .create)
            try f.root.write("emb", (0..<4096 * 32).map { Float($0) }, shape: [4096, 32])
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: good))
        let truncated = path("truncated.h5")
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        let e3 = #expect(throws: ArtifactError.self) {
            let f = try H5File(path: truncated, mode: .read)
            _ = try f.root.read("emb", as: Float.self)
        }
        #expect(e3?.file == truncated)

        let f = try H5File(path: good, mode: .read)
        let e4 = #expect(throws: ArtifactError.self) {
            _ = try f.root.dataset("emb", of: Int64.self, shape: [nil, 32])
        }
        #expect(e4?.object == "/emb")
        #expect(
            e4?.message.contains("expected int64 (*, 32), found float32 (4096, 32)") == true,
            "\(String(describing: e4))")
        let e5 = #expect(throws: ArtifactError.self) {
            _ = try f.root.dataset("emb", of: Float.self, shape: [nil, 64])
        }
        #expect(e5?.message.contains("expected float32 (*, 64)") == true)
        let e6 = #expect(throws: ArtifactError.self) { _ = try f.root.dataset("missing") }
        #expect(e6?.object == "/missing")
    }

    @Test("a run is published atomically: manifest last, current swapped, readers check files")
    func publish() throws {
        let comm = try Communicator.world()
        let root = dir.appendingPathComponent("runs-root")
        // Nothing published yet: a clear error.
        let e0 = #expect(throws: ArtifactError.self) { _ = try PublishedRun.open(root: root) }
        #expect(e0?.message.contains("no published run") == true)

        for (run, rows) in [("r1", 10), ("r2", 20)] {
            let w = try RunWriter(root: root, runID: run, producer: "test", config: ["rows": "\(rows)"], comm: comm)
            let p = try w.shardPath(artifact: "emb")
            do {
                let f = try H5File(path: p, mode: .create)
                try f.root.write("x", [Float](repeating: 1, count: rows * 4), shape: [rows, 4])
            }
            try w.record(artifact: "emb", path: p, rows: rows)
            // Before commit the run is invisible.
            #expect((try? PublishedRun.open(root: root))?.manifest.runID != run)
            let m = try w.commit()
            #expect(m.artifact("emb")?.rows == Int64(rows))
            let opened = try PublishedRun.open(root: root)
            #expect(opened.manifest.runID == run && opened.manifest.config["rows"] == "\(rows)")
            let paths = try opened.paths(of: "emb")
            #expect(paths.count == 1 && paths[0].hasSuffix("emb/part-00000-of-00001.h5"))
            #expect(try H5File(path: paths[0], mode: .read).root.dataset("x").shape == [rows, 4])
        }
        // The older run stays readable by id; a published id is never overwritten.
        #expect(try PublishedRun.open(root: root, runID: "r1").manifest.config["rows"] == "10")
        #expect(throws: ArtifactError.self) { _ = try RunWriter(root: root, runID: "r1", producer: "test", comm: comm) }
        #expect(throws: ArtifactError.self) { _ = try PublishedRun.open(root: root).paths(of: "nope") }
        // A file truncated after publishing is caught by the size check.
        let p = try PublishedRun.open(root: root).paths(of: "emb")[0]
        try Data(count: 10).write(to: URL(fileURLWithPath: p))
        let e = #expect(throws: ArtifactError.self) { _ = try PublishedRun.open(root: root) }
        #expect(e?.message.contains("manifest says") == true)
    }

    static var python: String? {
        let candidates =
            [ProcessInfo.processInfo.environment["MOSAIC_PYTHON"], "/usr/bin/python3", "/usr/local/bin/python3"]
            + (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/python3" }
        for c in candidates.compactMap({ $0 }) where FileManager.default.isExecutableFile(atPath: c) {
            if let r = try? MPIRun.run(c, ["-c", "import h5py"], timeout: 60), r.status == 0 { return c }
        }
        return nil
    }

    @Test(
        "h5py reads what Mosaic wrote (the interoperability contract)",
        .enabled(if: python != nil, "h5py is not installed: pip install h5py, or set MOSAIC_PYTHON"))
    func h5pyInterop() throws {
        let p = path("interop.h5")
        do {
            let f = try H5File(path: p, mode: .create)
            let g = try f.root.createGroup("pins")
            try g.write("embedding", (0..<300).map { Float($0) * 0.5 }, shape: [100, 3], compression: 4)
            try g.write("id", (0..<100).map { Int64($0) * 1_000_000_007 }, shape: [100])
            try g.write("flags", (0..<100).map { UInt8($0 % 3) }, shape: [100])
            try g.setAttribute("producer", "mosaic — test")
            try g.setAttribute("rows", Int64(100))
            try f.root.write("d", [Double.pi, -1], shape: [2])
            try f.root.write("i", [Int32(-7)], shape: [1])
        }
        let script = """
            import h5py, sys
            f = h5py.File(sys.argv[1], 'r')
            e = f['pins/embedding']
            assert e.shape == (100, 3) and str(e.dtype) == 'float32', (e.shape, e.dtype)
            assert e[10, 2] == 0.5 * 32 and e[99, 0] == 0.5 * 297
            assert int(f['pins/id'][3]) == 3 * 1000000007
            assert list(f['pins/flags'][:4]) == [0, 1, 2, 0]
            p = f['pins'].attrs['producer']
            p = p.decode() if isinstance(p, bytes) else p
            assert p == 'mosaic — test', p
            assert int(f['pins'].attrs['rows']) == 100
            assert abs(f['d'][0] - 3.141592653589793) < 1e-15 and f['i'][0] == -7
            print('H5PY OK')
            """
        let r = try MPIRun.run(Self.python!, ["-c", script, p], timeout: 120)
        #expect(r.status == 0 && r.stdout.contains("H5PY OK"), "\(r.output)")
    }
}

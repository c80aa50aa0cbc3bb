import Collective
import EventData
import Events
import Foundation
@testable import Graph
import Linalg
import Testing
import _TestSupport

/// A planted-community pin–board dataset: pin p and board b belong to community `id mod c`;
/// each pin is saved to `savesPerPin` boards, a board of its own community with probability
/// `1 − cross`, any board otherwise.
struct PlantedGraph {
    var communities = 8
    var pinsPerCommunity = 40
    var boardsPerCommunity = 12
    var savesPerPin = 3
    var cross = 0.05
    var seed: UInt64 = 7
    var isolatedPins = 5

    var pinIDs: [Int64] { (0..<Int64(communities * pinsPerCommunity + isolatedPins)).map { 1_000 + $0 } }
    func community(_ id: Int64) -> Int { Int(id % Int64(communities)) }

    /// Edges (pin, board); the last `isolatedPins` pins have none.
    func edges() -> (pins: [Int64], boards: [Int64]) {
        var pins = [Int64](), boards = [Int64]()
        let nb = communities * boardsPerCommunity
        for p in pinIDs.prefix(communities * pinsPerCommunity) {
            var rng = RandomStream(seed: seed, index: UInt64(p))
            for _ in 0..<savesPerPin {
                let b: Int64
                if rng.uniform() < cross {
                    b = Int64(rng.int(below: nb))
                } else {
                    b = Int64(rng.int(below: boardsPerCommunity) * communities + community(p))
                }
                pins.append(p); boards.append(500_000 + b)
            }
        }
        return (pins, boards)
    }

    /// Writes a dataset run with `pins` and `saves` (one rank). `extraSavePins` adds saves of
    /// pins that are not in `pins` (dangling); `noSaves` writes an empty saves entity.
    func write(root: URL, extraSavePins: [Int64] = [], noSaves: Bool = false) throws {
        let comm = try Communicator.world()
        let w = try DatasetWriter(root: root, runID: "planted", producer: "test", config: [:], comm: comm)
        var pins = Table(schema: .pins(dimension: 2))
        let ids = pinIDs
        pins.int64["pin_id"] = ids
        pins.int32["category"] = ids.map { Int32(community($0)) }
        pins.int64["created_at_ms"] = ids.map { _ in 1 }
        pins.int64["creator_id"] = ids.map { _ in 0 }
        pins.float32["embedding"] = ids.flatMap { [Float(community($0)), 1] }
        pins.setCount(ids.count)
        try w.append(pins)
        var (ep, eb) = noSaves ? ([], []) : edges()
        ep += extraSavePins; eb += extraSavePins.map { _ in 500_000 }
        var saves = Table(schema: .saves)
        saves.int64["pin_id"] = ep
        saves.int64["board_id"] = eb
        saves.int64["user_id"] = eb.map { $0 - 500_000 }
        saves.int64["saved_at_ms"] = ep.map { _ in 5 }
        saves.setCount(ep.count)
        try w.append(saves)
        try w.commit()
    }
}

@Suite("Graph: CSR and build (one rank)")
struct GraphCSRTests {
    @Test("CSR from edges: sorted unique ids and neighbours, duplicates merged, isolated rows, invariants")
    func csrInvariants() throws {
        var rng = RandomStream(seed: 3)
        var s = [Int64](), t = [Int64]()
        for _ in 0..<2_000 {
            s.append(Int64(rng.int(below: 300))); t.append(Int64(rng.int(below: 100)))
        }
        s += s.prefix(100); t += t.prefix(100)  // duplicates
        let csr = CSR.from(source: s, target: t, isolated: [10_000, 10_001, 5])
        try csr.validate("csr")
        let expected = Set(zip(s, t).map { "\($0.0)-\($0.1)" })
        var seen = Set<String>()
        for i in 0..<csr.count {
            for k in Int(csr.offsets[i])..<Int(csr.offsets[i + 1]) { seen.insert("\(csr.ids[i])-\(csr.neighbors[k])") }
        }
        #expect(seen == expected)
        #expect(csr.edgeCount == expected.count)
        #expect(csr.index(of: 10_000).map { csr.degree($0) } == 0)
        #expect(csr.index(of: 10_001) != nil)
        #expect(csr.index(of: 99_999) == nil)
        #expect(Set(csr.ids) == Set(s).union([10_000, 10_001, 5]))

        var bad = csr
        bad.offsets[3] = bad.offsets[4] + 1
        #expect(throws: GraphError.self) { try bad.validate("bad") }
        var unsorted = csr
        unsorted.ids.swapAt(0, 1)
        #expect(throws: GraphError.self) { try unsorted.validate("unsorted") }
        var short = csr
        short.offsets.removeLast()
        #expect(throws: GraphError.self) { try short.validate("short") }
        #expect(throws: Never.self) { try CSR.from(source: [], target: []).validate("empty") }
    }

    @Test("pin side and board side hold the same edges; pruning drops high-degree boards; shard file round-trips")
    func buildOneRank() throws {
        let comm = try Communicator.world()
        let g = PlantedGraph()
        let (ep, eb) = g.edges()
        let (shard, stats) = try GraphBuilder.build(pins: ep, boards: eb, isolated: g.pinIDs, comm: comm)
        try shard.pins.validate("pins"); try shard.boards.validate("boards")
        var a = Set<String>(), b = Set<String>()
        for i in 0..<shard.pins.count {
            for k in Int(shard.pins.offsets[i])..<Int(shard.pins.offsets[i + 1]) {
                a.insert("\(shard.pins.ids[i])-\(shard.pins.neighbors[k])")
            }
        }
        for i in 0..<shard.boards.count {
            for k in Int(shard.boards.offsets[i])..<Int(shard.boards.offsets[i + 1]) {
                b.insert("\(shard.boards.neighbors[k])-\(shard.boards.ids[i])")
            }
        }
        #expect(a == b)
        #expect(a == Set(zip(ep, eb).map { "\($0.0)-\($0.1)" }))
        #expect(stats.pins == g.pinIDs.count)
        #expect(stats.isolatedPins == g.isolatedPins)
        #expect(stats.edges == a.count)

        let cap = stats.maxBoardDegree - 2
        let (pruned, ps) = try GraphBuilder.build(
            pins: ep, boards: eb, isolated: g.pinIDs, maxBoardDegree: cap, comm: comm)
        #expect(ps.prunedBoards > 0)
        #expect(ps.maxBoardDegree <= cap)
        #expect(ps.edges + ps.prunedEdges == stats.edges)
        #expect((0..<pruned.boards.count).allSatisfy { pruned.boards.degree($0) <= cap })
        #expect(ps.pins == stats.pins)  // pins keep their rows even when all their boards went

        let path = try MPIRun.temporaryDirectory("graph-shard").appendingPathComponent("g.h5").path
        try shard.write(path: path, producer: "test")
        #expect(try GraphShard.read(path: path) == shard)
    }

    @Test("planted communities: importance neighbours stay in the community far above chance")
    func plantedCommunities() throws {
        let comm = try Communicator.world()
        let g = PlantedGraph(communities: 8, pinsPerCommunity: 60, boardsPerCommunity: 15, savesPerPin: 3, cross: 0.1)
        let (ep, eb) = g.edges()
        let (shard, _) = try GraphBuilder.build(pins: ep, boards: eb, isolated: g.pinIDs, comm: comm)
        let (n, stats) = try RandomWalker.run(
            shard, parameters: WalkParameters(walksPerPin: 64, topT: 10, batchPins: 100), comm: comm)
        #expect(stats.steps > 0)
        var same = 0, total = 0
        for i in 0..<n.pins.count {
            let nb = n.neighbors(i)
            if nb.isEmpty { continue }
            #expect(abs(nb.reduce(0) { $0 + $1.weight } - 1) < 1e-4)
            #expect(!nb.contains { $0.id == n.pins[i] })
            for x in nb {
                total += 1
                if g.community(x.id) == g.community(n.pins[i]) { same += 1 }
            }
        }
        let fraction = Double(same) / Double(total)
        // Chance is 1/8 = 0.125.
        #expect(total > 4_000)
        #expect(fraction > 0.75, "in-community fraction \(fraction)")
        // Isolated pins get no neighbours; the same seed gives the same neighbours.
        for id in g.pinIDs.suffix(g.isolatedPins) { #expect(n.neighbors(n.pins.firstIndex(of: id)!).isEmpty) }
        var banded = WalkParameters(walksPerPin: 64, topT: 10, batchPins: 7)
        (banded.hardFrom, banded.hardTo, banded.hardCount) = (12, 40, 5)
        let (again, _) = try RandomWalker.run(shard, parameters: banded, comm: comm)
        #expect(again.ids == n.ids && again.counts == n.counts && again.pins == n.pins)
        // The hard band: 5 pins per pin from visit ranks 12 ..< 40, none of them the pin or a top-10
        // neighbour, and (planted communities) still mostly in the pin's community.
        #expect(again.h == 5 && again.hard.count == n.pins.count * 5)
        var banded5 = 0, bandSame = 0
        for i in 0..<n.pins.count {
            let top = Set(n.neighbors(i).map(\.id))
            for id in again.hard[i * 5..<(i + 1) * 5] where id >= 0 {
                banded5 += 1
                #expect(id != n.pins[i] && !top.contains(id))
                if g.community(id) == g.community(n.pins[i]) { bandSame += 1 }
            }
        }
        #expect(banded5 > 1_000)
        #expect(Double(bandSame) / Double(banded5) > 0.5, "band in-community \(bandSame) of \(banded5)")
    }
}

@Suite(
    "Graph under mpirun: same graph and neighbours for 1, 2, 4 ranks; bad input", .serialized,
    .enabled(if: MPIRun.mpirunAvailable, "mpirun not installed"))
struct GraphMPITests {
    func line(_ prefix: String, _ r: MPIRun.Result) -> String {
        r.stdout.split(separator: "\n").first { $0.hasPrefix(prefix) }.map(String.init)
            ?? "missing \(prefix): \(r.output)"
    }

    @Test("graph build and walks: identical digests on 1, 2 and 4 ranks (and walks re-partition a 4-rank graph on 2)")
    func rankIndependence() throws {
        let dir = try MPIRun.temporaryDirectory("graph-mpi")
        let data = dir.appendingPathComponent("data")
        try PlantedGraph().write(root: data)
        var graphs: [String] = [], walks: [String] = []
        for ranks in [1, 2, 4] {
            let g = dir.appendingPathComponent("graph\(ranks)").path
            let b = try MPIRun.mosaic(ranks: ranks, ["graph", "build", "--data", data.path, "--out", g])
            #expect(b.status == 0, "\(b.output)")
            graphs.append(line("GRAPH", b))
            let w = try MPIRun.mosaic(
                ranks: ranks,
                [
                    "graph", "walks", "--graph", g, "--out", dir.appendingPathComponent("walks\(ranks)").path,
                    "--walks", "16", "--batch-pins", "50", "--hard-count", "4", "--hard-ranks", "5:30",
                ])
            #expect(w.status == 0, "\(w.output)")
            walks.append(line("WALKS", w))
        }
        #expect(graphs[0].contains("pins=325 "))
        #expect(graphs[0].contains("isolated=5 "))
        #expect(Set(graphs).count == 1, "\(graphs)")
        #expect(Set(walks).count == 1, "\(walks)")
        let w2 = try MPIRun.mosaic(
            ranks: 2,
            [
                "graph", "walks", "--graph", dir.appendingPathComponent("graph4").path, "--out",
                dir.appendingPathComponent("walks4on2").path, "--walks", "16", "--batch-pins", "50", "--hard-count",
                "4",
                "--hard-ranks", "5:30",
            ])
        #expect(line("WALKS", w2) == walks[0])
        // Three ranks (not a power of two: owners by division, not by mask), re-partitioning the
        // one-rank graph.
        let w3 = try MPIRun.mosaic(
            ranks: 3,
            [
                "graph", "walks", "--graph", dir.appendingPathComponent("graph1").path, "--out",
                dir.appendingPathComponent("walks1on3").path, "--walks", "16", "--batch-pins", "50", "--hard-count",
                "4", "--hard-ranks", "5:30",
            ])
        #expect(line("WALKS", w3) == walks[0])
        // Cache tiles of 7 walkers (many tiles per pass, walkers compacted across tiles) change
        // nothing, on one rank and on two (walkers received mid-pass, departures from every tile).
        for ranks in [1, 2] {
            let wt = try MPIRun.mosaic(
                ranks: ranks,
                [
                    "graph", "walks", "--graph", dir.appendingPathComponent("graph\(ranks)").path, "--out",
                    dir.appendingPathComponent("walks-tile7-\(ranks)").path, "--walks", "16", "--batch-pins", "50",
                    "--hard-count", "4", "--hard-ranks", "5:30", "--tile-walkers", "7",
                ])
            #expect(line("WALKS", wt) == walks[0], "tile 7 on \(ranks) rank(s)")
        }
        // The neighbour files agree too (gathered over shards).
        let a = try ImportanceNeighbors.readAll(root: dir.appendingPathComponent("walks1"))
        let b = try ImportanceNeighbors.readAll(root: dir.appendingPathComponent("walks4"))
        let byPin = { (n: ImportanceNeighbors) in
            Dictionary(
                uniqueKeysWithValues: n.pins.indices.map {
                    (
                        n.pins[$0],
                        n.neighbors($0).map { "\($0.id):\($0.weight)" }
                            + n.hard[$0 * n.h..<($0 + 1) * n.h].map { "\($0)" }
                    )
                })
        }
        #expect(a.h == 4 && b.h == 4)
        #expect(a.hard.contains { $0 >= 0 })
        #expect(byPin(a) == byPin(b))
    }

    @Test("a rank with no pins: one pin, four ranks, same graph and walks as one rank")
    func rankWithoutPins() throws {
        let dir = try MPIRun.temporaryDirectory("graph-tiny")
        let data = dir.appendingPathComponent("data")
        try PlantedGraph(
            communities: 1, pinsPerCommunity: 2, boardsPerCommunity: 1, savesPerPin: 1, cross: 0, isolatedPins: 0
        ).write(root: data)
        var lines: [String] = []
        for ranks in [1, 4] {
            let g = dir.appendingPathComponent("g\(ranks)").path
            let b = try MPIRun.mosaic(ranks: ranks, ["graph", "build", "--data", data.path, "--out", g])
            #expect(b.status == 0, "\(b.output)")
            let w = try MPIRun.mosaic(
                ranks: ranks, ["graph", "walks", "--graph", g, "--out", dir.appendingPathComponent("w\(ranks)").path])
            #expect(w.status == 0, "\(w.output)")
            lines.append(line("GRAPH", b) + " " + line("WALKS", w))
        }
        #expect(lines[0] == lines[1])
        #expect(lines[0].contains("pins=2 boards=1 edges=2"))
    }

    @Test("bad input: a dangling pin id names the file, row and field; no saves is a clear error")
    func badInput() throws {
        let dir = try MPIRun.temporaryDirectory("graph-bad")
        let dangling = dir.appendingPathComponent("dangling")
        try PlantedGraph(communities: 2, pinsPerCommunity: 5).write(root: dangling, extraSavePins: [77])
        let r = try MPIRun.mosaic(
            ranks: 2, ["graph", "build", "--data", dangling.path, "--out", dir.appendingPathComponent("g1").path])
        #expect(r.status != 0)
        #expect(r.stderr.contains("saves/part-00000-of-00001.h5 row 31 field pin_id: dangling id 77"), "\(r.stderr)")
        let empty = dir.appendingPathComponent("empty")
        try PlantedGraph(communities: 2, pinsPerCommunity: 5).write(root: empty, noSaves: true)
        let e = try MPIRun.mosaic(
            ranks: 2, ["graph", "build", "--data", empty.path, "--out", dir.appendingPathComponent("g2").path])
        #expect(e.status != 0)
        #expect(e.stderr.contains("no edges"), "\(e.stderr)")
        let missing = try MPIRun.mosaic(
            ranks: 1,
            [
                "graph", "walks", "--graph", dir.appendingPathComponent("nothing").path, "--out",
                dir.appendingPathComponent("w").path,
            ])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("no published run"), "\(missing.stderr)")
    }
}

@Suite("Graph: walker internals (node table, counter streams, visit counts)")
struct WalkerInternalsTests {
    @Test("node table finds every id with its span (colliding hashes included) and no absent id")
    func nodeTable() throws {
        var rng = RandomStream(seed: 11)
        var s = [Int64](), t = [Int64]()
        for _ in 0..<20_000 { s.append(Int64(rng.int(below: 5_000)) * 7 - 900); t.append(Int64(rng.int(below: 300))) }
        let csr = CSR.from(source: s, target: t, isolated: [123_456_789])
        for boardSide in [false, true] {
            let table = try NodeTable(csr, boardSide: boardSide)
            #expect(table.size >= 2 * csr.count)
            try table.slots.withUnsafeBufferPointer { slots in
                for i in 0..<csr.count {
                    let id = csr.ids[i]
                    let h = GraphPartition.hash(boardSide ? ~id : id)
                    let slot = try #require(slots.find(id, hash: h, size: table.size))
                    let (start, degree) = table.span(slot)
                    #expect(start == csr.offsets[i] && degree == Int64(csr.degree(i)))
                }
                for id: Int64 in [-1, 1, 1_000_000, .max] where csr.index(of: id) == nil {
                    #expect(slots.find(id, hash: GraphPartition.hash(boardSide ? ~id : id), size: table.size) == nil)
                }
            }
        }
    }

    @Test("owner by mask or division equals GraphPartition's owner for 1…8 ranks")
    func ownerOf() {
        var rng = RandomStream(seed: 5)
        for ranks in 1...8 {
            let owner = OwnerOf(ranks: ranks)
            for _ in 0..<2_000 {
                let id = Int64(bitPattern: UInt64(rng.int(below: Int.max)) &* 0x9E37_79B9_7F4A_7C15)
                #expect(owner(GraphPartition.hash(id)) == GraphPartition.pinOwner(id, ranks: ranks))
                #expect(owner(GraphPartition.hash(~id)) == GraphPartition.boardOwner(id, ranks: ranks))
            }
        }
    }

    @Test("walker streams: deterministic, distinct per (start, walk, step, draw), uniform below n")
    func streams() {
        let k = WalkerStream.key(seed: 3, start: 42, walk: 7)
        #expect(k == WalkerStream.key(seed: 3, start: 42, walk: 7))
        #expect(k != WalkerStream.key(seed: 3, start: 42, walk: 8))
        #expect(k != WalkerStream.key(seed: 3, start: 43, walk: 7))
        #expect(k != WalkerStream.key(seed: 4, start: 42, walk: 7))
        #expect(WalkerStream.draw(k, step: 1, 0) != WalkerStream.draw(k, step: 1, 1))
        var histogram = [Int](repeating: 0, count: 5)
        for step in 0..<50_000 {
            histogram[Int(WalkerStream.below(5, WalkerStream.draw(k, step: UInt64(step), 0)))] += 1
        }
        #expect(histogram.allSatisfy { abs($0 - 10_000) < 500 }, "\(histogram)")
    }

    @Test("visit counts: top T by count, ties by smaller id, start pin skipped, groups large and small")
    func counting() {
        // Start 0 (id 100): visits 5×7, 3×9, 3×8, 1×100 (itself); start 1 (id 200): 40 distinct ids once.
        var positions = [Int64](), visited = [Int64]()
        for (v, c) in [(7, 5), (9, 3), (8, 3), (100, 1)] {
            for _ in 0..<c { positions.append(0); visited.append(Int64(v)) }
        }
        for v in (0..<40).reversed() { positions.append(1); visited.append(Int64(1_000 + v)) }
        var result = ImportanceNeighbors(t: 3)
        RandomWalker.count(positions: positions, visited: visited, starts: [100, 200][...], topT: 3, into: &result)
        #expect(result.pins == [100, 200])
        #expect(Array(result.ids[0..<3]) == [7, 8, 9])
        #expect(Array(result.counts[0..<3]) == [5, 3, 3])
        #expect(abs(result.weights[0] - 5.0 / 11) < 1e-6)
        #expect(Array(result.ids[3..<6]) == [1_000, 1_001, 1_002])
    }
    @Test("visit counts: groups of 0 to 400 visits (insertion-sorted and sorted) equal a reference, hard band included")
    func countingAgainstReference() {
        // Groups of 0 to 400 visits over few or many distinct pins, the start pin among them,
        // visits of different groups interleaved.
        var x: UInt64 = 0x1234_5678
        func next(_ n: Int) -> Int {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((x >> 33) % UInt64(n))
        }
        let starts: [Int64] = [10, 20, 30, 40, 50, 60, 70]
        let sizes = [0, 5, 32, 33, 100, 400, 250], ranges = [5, 8, 10, 40, 30, 1_000, 3]
        var visits: [(Int64, Int64)] = []
        for (i, size) in sizes.enumerated() {
            for _ in 0..<size { visits.append((Int64(i), next(9) == 0 ? starts[i] : Int64(next(ranges[i])))) }
        }
        for j in stride(from: visits.count - 1, to: 0, by: -1) { visits.swapAt(j, next(j + 1)) }
        let t = 6, hard = (from: 2, to: 20, count: 3)
        var result = ImportanceNeighbors(t: t)
        result.h = hard.count
        RandomWalker.count(
            positions: visits.map(\.0), visited: visits.map(\.1), starts: starts[...], topT: t, hard: hard,
            into: &result)
        for (i, s) in starts.enumerated() {
            var tally: [Int64: Int32] = [:]
            for (q, v) in visits where q == Int64(i) && v != s { tally[v, default: 0] += 1 }
            let ranked = tally.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            let top = ranked.prefix(t)
            #expect(Array(result.ids[i * t..<i * t + top.count]) == top.map(\.key), "group \(i)")
            #expect(Array(result.counts[i * t..<i * t + top.count]) == top.map(\.value), "group \(i)")
            #expect(result.ids[i * t + top.count..<(i + 1) * t].allSatisfy { $0 == -1 })
            let total = Float(top.reduce(0) { $0 + $1.value })
            for (j, e) in top.enumerated() { #expect(abs(result.weights[i * t + j] - Float(e.value) / total) < 1e-6) }
            let width = min(hard.to, ranked.count) - hard.from
            let m = min(hard.count, max(0, width))
            let expected = (0..<m).map { ranked[hard.from + $0 * width / m].key }
            #expect(Array(result.hard[i * hard.count..<i * hard.count + m]) == expected, "hard band of group \(i)")
        }
    }
    @Test("edge sort: the radix sort orders (source, target) like Array.sort, negative ids and duplicates included")
    func edgeRadixSort() {
        var x: UInt64 = 99
        func next() -> UInt64 {
            x = x &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return x >> 11
        }
        let ranges: [(Int64) -> Int64] = [
            { $0 % 5_000 },  // small ids: most bytes constant (skipped passes)
            { $0 % 2 == 0 ? -($0 % 300) : $0 % 1_000_000 },  // negative and positive
            { Int64(bitPattern: UInt64(bitPattern: $0) &* 0x9E37_79B9_7F4A_7C15) },  // all 64 bits
        ]
        for (r, id) in ranges.enumerated() {
            for n in [10, 5_000, 40_000] {
                var pairs = (0..<n).map { _ in EdgePair(s: id(Int64(next() % 1_000_003)), t: id(Int64(next() % 77))) }
                pairs += pairs.prefix(n / 10)  // duplicates
                var expected = pairs
                expected.sort()
                EdgeSort.sort(&pairs)
                #expect(pairs == expected, "range \(r), \(n) pairs")
            }
        }
        var same = [EdgePair](repeating: EdgePair(s: -3, t: 7), count: 5_000)
        EdgeSort.sort(&same)
        #expect(same.allSatisfy { $0 == EdgePair(s: -3, t: 7) })
    }
}

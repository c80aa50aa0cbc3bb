import Artifacts
import Collective
import Foundation
import Graph
import Index
import Learning
import Linalg
import Models
import Testing
import _TestSupport

/// Central finite differences in Double.
private func numeric(count: Int, get: (Int) -> Double, set: (Int, Double) -> Void, loss: () -> Double) -> [Double] {
    let h = 1e-6
    return (0..<count).map { i in
        let v = get(i)
        set(i, v + h); let plus = loss()
        set(i, v - h); let minus = loss()
        set(i, v)
        return (plus - minus) / (2 * h)
    }
}

private func relativeError(_ a: [Double], _ n: [Double]) -> Double {
    var diff = 0.0, na = 0.0, nn = 0.0
    for i in a.indices { diff += (a[i] - n[i]) * (a[i] - n[i]); na += a[i] * a[i]; nn += n[i] * n[i] }
    let scale = na.squareRoot() + nn.squareRoot()
    return scale < 1e-12 ? diff.squareRoot() : diff.squareRoot() / scale
}

/// A one-rank node store: `n` pins with random content; pin i's neighbours are random pins
/// (`t` slots, some padded); the last `cold` pins have no neighbours.
private func makeStore(n: Int = 40, dIn: Int = 6, t: Int = 3, cold: Int = 3, seed: UInt64 = 11) throws -> NodeStore {
    var rng = RandomStream(seed: seed)
    let ids = (0..<Int64(n)).map { 100 + $0 * 7 }
    let content = (0..<n * dIn).map { _ in Float(rng.normal()) }
    var nid = [Int64](), nw = [Float]()
    for i in 0..<n {
        let filled = i >= n - cold ? 0 : 1 + rng.int(below: t)
        var raw = [Float]()
        for k in 0..<t {
            if k < filled {
                var j = rng.int(below: n - cold)
                if j == i { j = (j + 1) % (n - cold) }
                nid.append(ids[j]); raw.append(Float(1 + rng.int(below: 5)))
            } else {
                nid.append(-1); raw.append(0)
            }
        }
        let s = raw.reduce(0, +)
        nw += raw.map { s > 0 ? $0 / s : 0 }
    }
    return try NodeStore(
        comm: try Communicator.world(), dIn: dIn, t: t, contentIDs: ids, content: content, neighborPins: ids,
        neighborIDs: nid, neighborWeights: nw)
}

@Suite("PinSage: gradients (Double, finite differences), bulk vs per-pin embedding, cold start")
struct PinSageTests {
    @Test("sampler queries: M distinct pins with neighbours per micro-batch, fresh each step, every pin drawn")
    func samplerQueries() throws {
        let store = try makeStore(n: 40, cold: 3)
        let sampler = try PinSageSampler(store: store, microBatches: 3, microBatchSize: 8, seed: 2)
        #expect(sampler.candidateCount == sampler.localCandidates.count)
        let pool = Set(sampler.localCandidates)
        var seen = Set<Int64>()
        for step in 0..<40 {
            let q = try sampler.queries(step: step, comm: store.comm)
            #expect(q.count == 3)
            for batch in q {
                #expect(batch.count == 8 && Set(batch).count == 8 && pool.isSuperset(of: batch))
                seen.formUnion(batch)
            }
            #expect(q[0] != q[1])
            #expect(try sampler.queries(step: step, comm: store.comm) == q)
        }
        #expect(try sampler.queries(step: 0, comm: store.comm) != sampler.queries(step: 1, comm: store.comm))
        #expect(seen == pool)
        // Fewer candidates than M: all of them.
        let small = try PinSageSampler(store: store, microBatches: 1, microBatchSize: 500, seed: 2)
        #expect(Set(try small.queries(step: 0, comm: store.comm)[0]) == pool)
    }

    @Test("conv layer: parameter and input gradients match central differences")
    func convGradient() throws {
        let store = ParameterStore<Double>(seed: 4)
        let conv = PinSageConv(store, name: "c", dIn: 5, dHidden: 6, dOut: 4)
        var rng = RandomStream(seed: 9)
        let b = 3, t = 4
        var selfX = Tensor(rows: b, cols: 5, data: (0..<b * 5).map { _ in rng.normal() })
        var neighbors = Tensor(rows: b * t, cols: 5, data: (0..<b * t * 5).map { _ in rng.normal() })
        let weights: [Double] = [0.4, 0.3, 0.3, 0, 1, 0, 0, 0, 0.25, 0.25, 0.25, 0.25]
        let g = (0..<b * 4).map { _ in rng.normal() }
        func loss() -> Double {
            zip(conv.forward(selfX: selfX, neighbors: neighbors, weights: weights, t: t).data, g).reduce(0) {
                $0 + $1.0 * $1.1
            }
        }
        store.zeroGrads()
        _ = conv.forward(selfX: selfX, neighbors: neighbors, weights: weights, t: t)
        let (dSelf, dNeighbors) = conv.backward(Tensor(rows: b, cols: 4, data: g))
        let analytic = Array(store.grads)
        let values = store.values
        let np = numeric(count: store.count, get: { values[$0] }, set: { values[$0] = $1 }, loss: loss)
        #expect(relativeError(analytic, np) < 1e-6, "parameters \(relativeError(analytic, np))")
        let ns = numeric(count: selfX.count, get: { selfX.data[$0] }, set: { selfX.data[$0] = $1 }, loss: loss)
        #expect(relativeError(dSelf.data, ns) < 1e-6)
        let nn = numeric(
            count: neighbors.count, get: { neighbors.data[$0] }, set: { neighbors.data[$0] = $1 }, loss: loss)
        #expect(relativeError(dNeighbors.data, nn) < 1e-6)
        // Padding neighbours (weight 0) get no gradient.
        #expect(dNeighbors.data[3 * 5..<4 * 5].allSatisfy { $0 == 0 })
    }

    @Test("two-layer model with the max-margin loss: gradients through the computation graph match central differences")
    func modelGradient() throws {
        let store = try makeStore()
        let model = PinSageModel<Double>(
            config: PinSageConfig(dIn: 6, dHidden: 5, dOut: 4, layers: 2, margin: 0.5), seed: 3)
        let queries: [Int64] = [100, 114, 128, 142], positives: [Int64] = [107, 121, 135, 100]
        var targets = queries
        for p in positives where !targets.contains(p) { targets.append(p) }
        var batch = PinSageBatch()
        batch.queryRows = [queries.map { targets.firstIndex(of: $0)! }]
        batch.positiveRows = [positives.map { targets.firstIndex(of: $0)! }]
        // Hard negatives for queries 0 and 2 (pins 149 and 156, added as targets).
        targets += [149, 156]
        batch.hardNegatives = [[(query: 0, row: targets.count - 2), (query: 2, row: targets.count - 1)]]
        let graph = try ComputationGraph.build(targets: targets, layers: 2, store: store)
        batch.graphs = [graph]
        model.parameters.zeroGrads()
        let (loss0, _) = model.lossAndGradients(batch, normalizer: 4, step: 1)
        #expect(loss0 > 0)
        var inBatchOnly = batch
        inBatchOnly.hardNegatives = []
        #expect(
            model.lossAndGradients(inBatchOnly, normalizer: 4, step: 1).loss < loss0,
            "the hard-negative hinge terms are active")
        let analytic = Array(model.parameters.grads)
        let values = model.parameters.values
        let n = numeric(count: model.parameters.count, get: { values[$0] }, set: { values[$0] = $1 }) {
            model.parameters.zeroGrads()
            return model.lossAndGradients(batch, normalizer: 4, step: 1).loss
        }
        #expect(relativeError(analytic, n) < 1e-5, "\(relativeError(analytic, n))")

        // With a learnable id embedding: dense and sparse (table row) gradients.
        let withID = PinSageModel<Double>(
            config: PinSageConfig(dIn: 6, dHidden: 8, dOut: 6, layers: 2, margin: 0.5, idDim: 3, idRows: 50), seed: 7)
        let table = withID.idTable!
        withID.parameters.zeroGrads()
        let (_, sparse) = withID.lossAndGradients(batch, normalizer: 4, step: 1)
        let dense = Array(withID.parameters.grads)
        let wv = withID.parameters.values
        let nd = numeric(count: withID.parameters.count, get: { wv[$0] }, set: { wv[$0] = $1 }) {
            withID.lossAndGradients(batch, normalizer: 4, step: 1).loss
        }
        #expect(
            relativeError(dense, nd) < 1e-5,
            "dense \(relativeError(dense, nd)) worst \(dense.indices.max { abs(dense[$0] - nd[$0]) < abs(dense[$1] - nd[$1]) }.map { ($0, dense[$0], nd[$0]) }!) of \(withID.parameters.layout)"
        )
        var tableGrad = [Double](repeating: 0, count: table.values.count)
        for (i, r) in sparse[0].rows.enumerated() {
            for c in 0..<3 { tableGrad[Int(r) * 3 + c] += sparse[0].grads[i * 3 + c] }
        }
        let nt = numeric(count: table.values.count, get: { table.values[$0] }, set: { table.values[$0] = $1 }) {
            withID.lossAndGradients(batch, normalizer: 4, step: 1).loss
        }
        #expect(tableGrad.contains { $0 != 0 })
        #expect(relativeError(tableGrad, nt) < 1e-5, "table \(relativeError(tableGrad, nt))")
    }

    @Test("output layer G2·ReLU(G1·z) + L2 norm: parameter and input gradients match central differences")
    func outputGradient() throws {
        let store = ParameterStore<Double>(seed: 6)
        let layer = PinSageOutput(store, name: "o", dIn: 5, dHidden: 7, dOut: 4)
        var rng = RandomStream(seed: 10)
        var x = Tensor(rows: 3, cols: 5, data: (0..<15).map { _ in rng.normal() })
        let g = (0..<12).map { _ in rng.normal() }
        func loss() -> Double { zip(layer.forward(x).data, g).reduce(0) { $0 + $1.0 * $1.1 } }
        store.zeroGrads()
        let out = layer.forward(x)
        let dx = layer.backward(Tensor(rows: 3, cols: 4, data: g))
        let analytic = Array(store.grads)
        let values = store.values
        let np = numeric(count: store.count, get: { values[$0] }, set: { values[$0] = $1 }, loss: loss)
        #expect(relativeError(analytic, np) < 1e-6, "parameters \(relativeError(analytic, np))")
        let nx = numeric(count: x.count, get: { x.data[$0] }, set: { x.data[$0] = $1 }, loss: loss)
        #expect(relativeError(dx.data, nx) < 1e-6)
        for r in 0..<3 {
            let row = out.data[r * 4..<(r + 1) * 4]
            #expect(abs(row.reduce(0) { $0 + $1 * $1 } - 1) < 1e-9)
        }
        // No final ReLU: non-negative convolution outputs can map to negative coordinates.
        let pos = Tensor(rows: 50, cols: 5, data: (0..<250).map { _ in abs(rng.normal()) })
        #expect(layer.forward(pos).data.contains { $0 < 0 })
    }

    @Test(
        "model with output layer and the in-batch softmax (logQ, masked duplicates): gradients match central differences"
    )
    func softmaxModelGradient() throws {
        let store = try makeStore()
        let model = PinSageModel<Double>(
            config: PinSageConfig(
                dIn: 6, dHidden: 8, dOut: 6, layers: 2, margin: 0.5, idDim: 3, idRows: 50, outputLayer: true,
                softmaxTemperature: 0.3), seed: 7)
        // (Widths where no convolution row is all zero after its ReLU: there the L2 norm is not
        // differentiable.)
        // Query 114's positive (100) is also query 0, and pins 107 is the positive of two queries.
        let queries: [Int64] = [100, 114, 128, 142], positives: [Int64] = [107, 100, 135, 107]
        var targets = queries
        for p in positives where !targets.contains(p) { targets.append(p) }
        var batch = PinSageBatch()
        batch.queryRows = [queries.map { targets.firstIndex(of: $0)! }]
        batch.positiveRows = [positives.map { targets.firstIndex(of: $0)! }]
        targets += [149]
        batch.hardNegatives = [[(query: 1, row: targets.count - 1)]]
        batch.positiveLogQ = [[-3, -2, -4, -3]]
        batch.graphs = [try ComputationGraph.build(targets: targets, layers: 2, store: store)]
        model.parameters.zeroGrads()
        let (loss0, sparse) = model.lossAndGradients(batch, normalizer: 4, step: 1)
        #expect(loss0 > 0 && loss0.isFinite)
        var noCorrection = batch
        noCorrection.positiveLogQ = []
        #expect(abs(model.lossAndGradients(noCorrection, normalizer: 4, step: 1).loss - loss0) > 1e-6)
        model.parameters.zeroGrads()
        _ = model.lossAndGradients(batch, normalizer: 4, step: 1)
        let analytic = Array(model.parameters.grads)
        let values = model.parameters.values
        let n = numeric(count: model.parameters.count, get: { values[$0] }, set: { values[$0] = $1 }) {
            model.lossAndGradients(batch, normalizer: 4, step: 1).loss
        }
        #expect(relativeError(analytic, n) < 1e-5, "\(relativeError(analytic, n))")
        let table = model.idTable!
        var tableGrad = [Double](repeating: 0, count: table.values.count)
        for (i, r) in sparse[0].rows.enumerated() {
            for c in 0..<3 { tableGrad[Int(r) * 3 + c] += sparse[0].grads[i * 3 + c] }
        }
        let nt = numeric(count: table.values.count, get: { table.values[$0] }, set: { table.values[$0] = $1 }) {
            model.lossAndGradients(batch, normalizer: 4, step: 1).loss
        }
        #expect(relativeError(tableGrad, nt) < 1e-5, "table \(relativeError(tableGrad, nt))")
    }

    @Test("softmax loss masks a candidate that is the query's own positive pin or the query itself")
    func softmaxMask() throws {
        var rng = RandomStream(seed: 12)
        let zq = Tensor(rows: 3, cols: 4, data: (0..<12).map { _ in rng.normal() })
        let zp = Tensor(rows: 3, cols: 4, data: (0..<12).map { _ in rng.normal() })
        // Rows: queries 0, 1, 2; positives: 3, 3 (the same pin twice), 0 (query 0's pin).
        let masked = PinSageModel<Double>.softmaxLoss(
            zq: zq, zp: zp, queryRows: [0, 1, 2], positiveRows: [3, 3, 0], logQ: [], temperature: 1, normalizer: 1)
        // By hand: query 0 sees only {its positive, candidate 1}: candidate 1 is its own pin 3
        // → masked; candidate 2 is pin 0 = query 0 → masked. So its term is 0.
        func dot(_ i: Int, _ j: Int) -> Double { (0..<4).reduce(0) { $0 + zq.data[i * 4 + $1] * zp.data[j * 4 + $1] } }
        func term(_ i: Int, _ others: [Int]) -> Double {
            let z = [dot(i, i)] + others.map { dot(i, $0) }
            let m = z.max()!
            return m + log(z.reduce(0) { $0 + exp($1 - m) }) - z[0]
        }
        let expected = term(0, []) + term(1, [2]) + term(2, [0, 1])
        #expect(abs(masked.loss - expected) < 1e-9, "\(masked.loss) vs \(expected)")
    }

    @Test("consecutive-save pairs: both directions within the window, hold-out, top partners normalised")
    func sequencePairs() throws {
        // User 1 saves 10, 11, 12, 13 (13 held out); user 2 saves 11, 12 at equal times.
        let users: [Int64] = [1, 1, 1, 1, 2, 2], pins: [Int64] = [12, 10, 11, 13, 12, 11]
        let ts: [Int64] = [3, 1, 2, 4, 7, 7]
        let p = SequencePairs.pairs(
            users: users, pins: pins, timestamps: ts, parameters: .init(window: 2, holdOut: 1, width: 2))
        var got: [String: Float] = [:]
        for i in p.a.indices { got["\(p.a[i])-\(p.b[i])", default: 0] += p.w[i] }
        // User 1: 10-11 (1), 11-12 (1), 10-12 (1/2); user 2 (held out: its later pin by id, 12): none.
        #expect(got == ["10-11": 1, "11-10": 1, "11-12": 1, "12-11": 1, "10-12": 0.5, "12-10": 0.5])
        let rows = SequencePairs.top(a: p.a, b: p.b, w: p.w, width: 2)
        #expect(rows.pins == [10, 11, 12])
        #expect(rows.ids == [11, 12, 10, 12, 11, 10])
        #expect(abs(rows.weights[0] - 2 / 3) < 1e-6 && abs(rows.weights[2] - 0.5) < 1e-6)
    }

    @Test("bulk layer-by-layer embedding equals per-pin embedding; cold-start pins get unit vectors from content")
    func bulkEqualsPerPin() throws {
        let store = try makeStore(n: 60, cold: 4)
        for (layers, idDim, output) in [(1, 0, false), (2, 0, false), (2, 4, false), (1, 4, true), (2, 4, true)] {
            let model = PinSageModel<Float>(
                config: PinSageConfig(
                    dIn: 6, dHidden: 8, dOut: 5, layers: layers, idDim: idDim, idRows: 97, outputLayer: output),
                seed: 21)
            let bulk = try PinSageEmbedder.embedAll(model: model, store: store, chunk: 7)
            var worst: Float = 0
            for (r, id) in store.ids.enumerated() {
                let one = model.forward(try ComputationGraph.build(targets: [id], layers: layers, store: store))
                for c in 0..<5 { worst = max(worst, abs(one.data[c] - bulk[r * 5 + c])) }
            }
            #expect(worst < 1e-5, "K=\(layers) output \(output) max |bulk − per-pin| = \(worst)")
            let coldRows = (store.ids.count - 4)..<store.ids.count
            var vectors: [[Float]] = []
            for r in coldRows {
                let v = Array(bulk[r * 5..<(r + 1) * 5])
                let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
                #expect(v.allSatisfy { $0.isFinite })
                #expect(abs(norm - 1) < 1e-4 || norm == 0)
                vectors.append(v)
            }
            #expect(
                Set(vectors.map { $0.map { ($0 * 1e4).rounded() } }).count > 1,
                "different content gives different cold-start vectors")
        }
    }
}

@Suite(
    "PinSage under mpirun: training and embeddings agree for 1, 2, 4 ranks", .serialized,
    .enabled(if: MPIRun.mpirunAvailable, "mpirun not installed"))
struct PinSageMPITests {
    @Test("train losses (1 vs 2 ranks) and embeddings (1, 2, 4 ranks) agree up to float summation order")
    func rankIndependence() throws {
        let dir = try MPIRun.temporaryDirectory("pinsage-mpi")
        let data = dir.appendingPathComponent("data")
        try PlantedGraph().write(root: data)
        let graph = dir.appendingPathComponent("graph").path, walks = dir.appendingPathComponent("walks").path
        #expect(try MPIRun.mosaic(ranks: 2, ["graph", "build", "--data", data.path, "--out", graph]).status == 0)
        #expect(
            try MPIRun.mosaic(ranks: 2, ["graph", "walks", "--graph", graph, "--out", walks, "--top", "8"]).status == 0)
        // A second walks run with a PageRank hard-negative band (the sampler's band path).
        let banded = dir.appendingPathComponent("walks-band").path
        #expect(
            try MPIRun.mosaic(
                ranks: 2,
                [
                    "graph", "walks", "--graph", graph, "--out", banded, "--top", "8", "--hard-count", "6",
                    "--hard-ranks", "10:60",
                ]
            ).status == 0)
        // "seq": consecutive-save positives (the planted saves, ordered by (time, pin)), the
        // in-batch softmax with logQ from the owners, the output layer (also in the embeddings below).
        let sequence = [
            "--sequence-positives", "0.5", "--sequence-window", "2", "--softmax-temperature", "0.2", "--output-layer",
        ]
        for (name, source, extra) in [("m", walks, []), ("band", banded, []), ("seq", banded, sequence)] {
            var losses: [[Double]] = []
            for ranks in [1, 2] {
                let r = try MPIRun.mosaic(
                    ranks: ranks,
                    [
                        "pinsage", "train", "--data", data.path, "--walks", source, "--out",
                        dir.appendingPathComponent("\(name)\(ranks)").path,
                        "--steps", "6", "--micro-batches", "3", "--micro-batch-size", "8", "--hidden", "16", "--dim",
                        "8",
                        "--id-dim", "4", "--hard-ramp", "3", "--hard-per-query", "2",
                    ] + extra)
                #expect(r.status == 0, "\(r.output)")
                let line = r.stdout.split(separator: "\n").first { $0.hasPrefix("LOSSES") } ?? ""
                losses.append(line.split(separator: " ").dropFirst().compactMap { Double($0) })
            }
            #expect(losses[0].count == 6)
            #expect(
                losses[0].count == losses[1].count && zip(losses[0], losses[1]).allSatisfy { abs($0 - $1) < 1e-4 },
                "\(name): \(losses)")
        }
        var tables: [[Int64: [Float]]] = []
        for ranks in [1, 2, 4] {
            let out = dir.appendingPathComponent("e\(ranks)")
            let r = try MPIRun.mosaic(
                ranks: ranks,
                [
                    "pinsage", "embed", "--data", data.path, "--walks", banded, "--model",
                    dir.appendingPathComponent("seq1").path, "--out", out.path,
                ])
            #expect(r.status == 0, "\(r.output)")
            tables.append(try readEmbeddings(out))
        }
        #expect(tables[0].count == PlantedGraph().pinIDs.count)
        for other in tables.dropFirst() {
            #expect(Set(other.keys) == Set(tables[0].keys))
            let worst = tables[0].map { id, v in zip(v, other[id]!).map { abs($0 - $1) }.max()! }.max()!
            #expect(worst < 1e-5)
        }

        // The IVF index over the embeddings written by 2 ranks, built on 1, 2 and 4 ranks: the
        // same lists (pin ids), every pin once; the run's manifest names the embedding model.
        var lists: [[[Int64]]] = []
        for ranks in [1, 2, 4] {
            let out = dir.appendingPathComponent("ivf\(ranks)")
            let r = try MPIRun.mosaic(
                ranks: ranks,
                [
                    "index", "build", "--embeddings", dir.appendingPathComponent("e2").path, "--out", out.path,
                    "--nlist", "4", "--iterations", "10", "--quiet",
                ])
            #expect(r.status == 0 && r.stdout.contains("INDEX BUILT ntotal=\(tables[0].count)"), "\(r.output)")
            let run = try PublishedRun.open(root: out)
            #expect(run.manifest.config["model_version"] == "pinsage")
            let index = try IVFIndex.load(from: try run.paths(of: "index")[0])
            lists.append((0..<index.nlist).map { index.ids(inList: $0) })
        }
        #expect(Set(lists[0].flatMap { $0 }) == Set(tables[0].keys) && lists[0].flatMap { $0 }.count == tables[0].count)
        #expect(lists[1] == lists[0] && lists[2] == lists[0], "\(lists.map { $0.map(\.count) })")
        let wrong = try MPIRun.mosaic(
            ranks: 1,
            [
                "index", "build", "--embeddings", walks, "--out", dir.appendingPathComponent("ivf-bad").path, "--nlist",
                "4",
            ])
        #expect(wrong.status != 0 && wrong.stderr.contains("no 'embeddings' artifact"), "\(wrong.output)")
    }

    func readEmbeddings(_ root: URL) throws -> [Int64: [Float]] {
        var out: [Int64: [Float]] = [:]
        for path in try PublishedRun.open(root: root).paths(of: "embeddings") {
            let f = try H5File(path: path, mode: .read)
            let g = try f.root.group("embeddings")
            #expect(try g.stringAttribute("model_version") == "pinsage")
            let ids = try g.read("pin_ids", as: Int64.self), v = try g.read("vectors", as: Float.self)
            let d = ids.isEmpty ? 0 : v.count / ids.count
            for (i, id) in ids.enumerated() { out[id] = Array(v[i * d..<(i + 1) * d]) }
        }
        return out
    }
}

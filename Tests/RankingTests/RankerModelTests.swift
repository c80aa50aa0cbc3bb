import Foundation
import Learning
import Linalg
import Ranking
import Testing

/// Central finite differences in Double of the whole ranker's loss.
enum FiniteDifference {
    static let h = 1e-6
    static func relativeError(_ a: [Double], _ n: [Double]) -> Double {
        var diff = 0.0, na = 0.0, nn = 0.0
        for i in a.indices {
            diff += (a[i] - n[i]) * (a[i] - n[i]); na += a[i] * a[i]; nn += n[i] * n[i]
        }
        let s = na.squareRoot() + nn.squareRoot()
        return s < 1e-12 ? diff.squareRoot() : diff.squareRoot() / s
    }
}

/// A small random batch in Double: `fields` hashed ids, dense and content features, positions,
/// `tasks` labels.
func smallBatch(_ config: RankerConfig, count: Int, seed: UInt64, table: EmbeddingTable<Double>) -> RankerBatch<Double>
{
    var rng = RandomStream(seed: seed)
    var rows: [Int] = []
    for _ in 0..<count {
        for f in 0..<config.fields { rows.append(table.row(forID: Int64(rng.int(below: 40)), salt: f)) }
    }
    let dense = (0..<count * config.denseWidth).map { _ in rng.normal() }
    let content = (0..<count * config.contentWidth).map { _ in rng.normal() }
    let positions = (0..<count).map { _ in rng.int(below: config.positionBuckets + 1) - 1 }
    let labels = config.tasks.map { _ in (0..<count).map { _ in Double(rng.int(below: 2)) } }
    let weights = (0..<count).map { _ in 0.5 + rng.uniform() }
    var batch = RankerBatch(
        count: count, firstIndex: 7, rows: rows, dense: dense, content: content, positions: positions, labels: labels,
        weights: weights)
    func slots(_ length: Int) -> SequenceSlots {
        var s = SequenceSlots()
        for b in 0..<count {
            // Example 0 has an empty sequence (all padding): its attention output must be 0.
            let n = b == 0 ? 0 : 1 + rng.int(below: length)
            s.append(
                rows: (0..<n).map { _ in table.row(forID: Int64(rng.int(below: 40)), salt: config.candidateField) },
                types: (0..<n).map { _ in rng.int(below: RankerConfig.eventTypes) },
                buckets: (0..<n).map { _ in rng.int(below: config.timeBuckets) }, length: length)
        }
        return s
    }
    if config.shortLength > 0 { batch.short = slots(config.shortLength) }
    if config.simK > 0 { batch.long = slots(config.simK) }
    if config.transformerLength > 0 {
        batch.recent = slots(config.transformerLength)
        if config.transformerContent {
            let w = config.contentWidth
            batch.recentContent = batch.recent.mask.flatMap { real in (0..<w).map { _ in real ? rng.normal() : 0 } }
        }
    }
    if config.architecture == .logistic && config.shortLength > 0 {
        // Example 0's history is empty: its mean content is zero, like SequenceSource's.
        batch.historyContent = (0..<count * config.contentWidth).map { $0 < config.contentWidth ? 0 : rng.normal() }
    }
    return batch
}

func smallConfig(_ arch: RankerConfig.Architecture, crossRank: Int = 0) -> RankerConfig {
    var c = RankerConfig()
    c.architecture = arch
    c.fields = 3; c.dim = 3; c.tableRows = 29; c.hashIDs = true
    c.denseWidth = 2; c.contentWidth = 3
    c.crossLayers = 2; c.crossRank = crossRank; c.crossExperts = 2
    c.experts = 2; c.expertWidths = [6, 5]; c.towerWidths = [4, 1]
    c.tasks = ["save", "closeup"]; c.taskWeights = [1, 0.5]
    c.positionBuckets = 4; c.positionHidden = 3
    c.dropout = 0.25
    c.embeddingL2 = 0.05
    c.embeddingDecay = 0.02
    c.seed = 5
    return c
}

@Suite("Ranker model")
struct RankerModelTests {
    /// Analytic (dense + sparse embedding) gradient against finite differences of the loss.
    func check(_ config: RankerConfig) throws {
        let model = makeRanker(config, as: Double.self)
        let table = model.tables[0]
        // Embeddings start at std 0.01 (LR: 0); spread them so every path carries signal.
        var r = RandomStream(seed: 3)
        for t in model.tables { for i in t.values.indices { t.values[i] = r.normal() * 0.5 } }
        let batch = smallBatch(config, count: 6, seed: 11, table: table)
        let store = model.parameters
        // Biases start at exactly 0: a ReLU whose inputs are all dead would then sit exactly on
        // its kink, where finite differences are meaningless. Move every parameter a little.
        for i in 0..<store.count { store.values[i] += r.normal() * 0.1 }
        store.zeroGrads()
        let (_, sparse) = model.lossAndGradients(batch, normalizer: 6, step: 3)
        let analyticDense = Array(store.grads)
        var analyticTable = [Double](repeating: 0, count: table.values.count)
        for (j, row) in sparse[0].rows.enumerated() {
            for c in 0..<table.dim { analyticTable[Int(row) * table.dim + c] = sparse[0].grads[j * table.dim + c] }
        }
        func loss() -> Double { model.lossAndGradients(batch, normalizer: 6, step: 3).loss }
        let values = store.values
        var numericDense: [Double] = []
        for i in 0..<store.count {
            let v = values[i]
            values[i] = v + FiniteDifference.h; let p = loss()
            values[i] = v - FiniteDifference.h; let m = loss()
            values[i] = v
            numericDense.append((p - m) / (2 * FiniteDifference.h))
        }
        var numericTable: [Double] = []
        for i in table.values.indices {
            let v = table.values[i]
            table.values[i] = v + FiniteDifference.h; let p = loss()
            table.values[i] = v - FiniteDifference.h; let m = loss()
            table.values[i] = v
            numericTable.append((p - m) / (2 * FiniteDifference.h))
        }
        // Further tables (the LR's hashed crosses: 2^20 rows): the touched rows and a few others.
        for t in model.tables.indices.dropFirst() {
            let other = model.tables[t], dim = other.dim
            var rows = Set(sparse[t].rows.map(Int.init))
            #expect(!rows.isEmpty, "table \(other.name) is never read")
            for _ in 0..<5 { rows.insert(r.int(below: other.rows)) }
            var analytic: [Double] = [], numeric: [Double] = []
            for row in rows.sorted() {
                let j = sparse[t].rows.firstIndex(of: Int64(row))
                for c in 0..<dim {
                    analytic.append(j.map { sparse[t].grads[$0 * dim + c] } ?? 0)
                    let i = row * dim + c, v = other.values[i]
                    other.values[i] = v + FiniteDifference.h; let p = loss()
                    other.values[i] = v - FiniteDifference.h; let m = loss()
                    other.values[i] = v
                    numeric.append((p - m) / (2 * FiniteDifference.h))
                }
            }
            let e = FiniteDifference.relativeError(analytic, numeric)
            #expect(e < 1e-6, "table \(other.name): relative error \(e)")
            #expect(analytic.map(abs).max()! > 1e-3)
        }
        let denseError = FiniteDifference.relativeError(analyticDense, numericDense)
        let tableError = FiniteDifference.relativeError(analyticTable, numericTable)
        var worst = ""
        for view in store.views {
            let r = view.offset..<(view.offset + view.count)
            let e = FiniteDifference.relativeError(Array(analyticDense[r]), Array(numericDense[r]))
            if e > 1e-6 { worst += " \(view.name): \(e)" }
        }
        #expect(denseError < 1e-6, "dense relative error \(denseError) over \(store.count) parameters;\(worst)")
        #expect(tableError < 1e-6, "embedding relative error \(tableError)")
        // The check is not vacuous: the gradients are far from zero.
        #expect(analyticDense.map(abs).max()! > 1e-3 && analyticTable.map(abs).max()! > 1e-3)
    }

    @Test("whole-model gradient (DCN-v2 full rank + MMoE + position tower + dropout + L2) matches finite differences")
    func gradientFullRank() throws { try check(smallConfig(.dcnMMoE)) }

    @Test("whole-model gradient with low-rank mixture cross layers matches finite differences")
    func gradientLowRank() throws { try check(smallConfig(.dcnMMoE, crossRank: 2)) }

    @Test("whole-model gradient with SIM (ESU over GSU events) and DIN (short sequence) matches finite differences")
    func gradientSequences() throws {
        var c = smallConfig(.dcnMMoE)
        c.shortLength = 3; c.simK = 4; c.simHeads = 2; c.timeBuckets = 5
        try check(c)
    }

    @Test(
        "whole-model gradient with the transformer (with and without time encoding, beside DIN) matches finite differences",
        arguments: [true, false])
    func gradientTransformer(time: Bool) throws {
        var c = smallConfig(.dcnMMoE)
        c.dim = 4; c.transformerLength = 4; c.transformerHeads = 2; c.transformerLayers = 2
        c.transformerTime = time; c.timeBuckets = 5
        if !time { c.shortLength = 3 }
        c.transformerContent = time  // with the pins' content in the tokens in one of the two
        try check(c)
    }

    @Test("serving path (distinct events projected once) gives the same inference logits as the per-slot path")
    func sharedInference() throws {
        var c = smallConfig(.dcnMMoE)
        c.shortLength = 5; c.simK = 7; c.simHeads = 2; c.timeBuckets = 3
        let model = RankerModel<Double>(c)
        let batch = smallBatch(c, count: 12, seed: 8, table: model.table)
        model.sharedInference = false
        let reference = model.logits(batch, training: false, step: 0)
        model.sharedInference = true
        let shared = model.logits(batch, training: false, step: 0)
        for k in reference.indices {
            for i in reference[k].indices { #expect(abs(reference[k][i] - shared[k][i]) < 1e-12) }
        }
        // Not vacuous: the sequences change the logits.
        var empty = batch
        empty.short.mask = empty.short.mask.map { _ in false }
        empty.long.mask = empty.long.mask.map { _ in false }
        #expect(model.logits(empty, training: false, step: 0)[0] != shared[0])
    }

    @Test("logistic-regression baseline gradient matches finite differences")
    func gradientLogistic() throws { try check(smallConfig(.logistic)) }

    @Test("logistic baseline with mean-pooled history (crosses, history content) matches finite differences")
    func gradientLogisticHistory() throws {
        var c = smallConfig(.logistic)
        c.shortLength = 4
        try check(c)
    }

    @Test("the logistic baseline's history features change its logits")
    func logisticHistoryMatters() throws {
        var c = smallConfig(.logistic)
        c.shortLength = 4
        let model = LogisticRanker<Double>(c)
        var r = RandomStream(seed: 9)
        for t in model.tables { for i in t.values.indices { t.values[i] = r.normal() } }
        for i in 0..<model.parameters.count { model.parameters.values[i] = r.normal() }
        let batch = smallBatch(c, count: 8, seed: 2, table: model.table)
        let full = model.logits(batch, training: false, step: 0)
        var noHistory = batch
        noHistory.short.mask = noHistory.short.mask.map { _ in false }
        noHistory.historyContent = noHistory.historyContent.map { _ in 0 }
        let plain = model.logits(noHistory, training: false, step: 0)
        // Example 0 has no history: same logit; the others differ.
        #expect(abs(full[0][0] - plain[0][0]) < 1e-12)
        #expect((1..<8).allSatisfy { abs(full[0][$0] - plain[0][$0]) > 1e-6 })
    }

    @Test("the position tower changes training logits only; inference ignores the position")
    func positionNulledAtInference() throws {
        let config = smallConfig(.dcnMMoE)
        let model = RankerModel<Double>(config)
        var batch = smallBatch(config, count: 8, seed: 4, table: model.table)
        let inference = model.logits(batch, training: false, step: 0)
        var other = batch
        other.positions = other.positions.map { ($0 + 2) % config.positionBuckets }
        #expect(model.logits(other, training: false, step: 0) == inference)
        // In training (dropout off, to isolate the tower) the position adds a per-bucket logit.
        model.dropout.isTraining = false
        var noDropout = config
        noDropout.dropout = 0
        let m2 = RankerModel<Double>(noDropout)
        batch.positions = [Int](repeating: 1, count: 8)
        let withPos = m2.logits(batch, training: true, step: 0)
        let without = m2.logits(batch, training: false, step: 0)
        let shift = withPos[0][0] - without[0][0]
        #expect(abs(shift) > 1e-6)
        for i in 0..<8 { #expect(abs(withPos[0][i] - without[0][i] - shift) < 1e-12) }
    }

    @Test("config round-trips through JSON and rejects bad combinations")
    func configJSON() throws {
        let c = smallConfig(.dcnMMoE)
        #expect(try RankerConfig.fromJSON(c.json()) == c)
        var bad = c
        bad.taskWeights = [1]
        #expect(throws: RankerError.self) { try bad.validate() }
        var t = c
        t.transformerLength = 50; t.transformerHeads = 4; t.transformerLayers = 2; t.transformerTime = false
        t.skipEvents = true; t.transformerContent = true
        #expect(try RankerConfig.fromJSON(t.json()) == t)
        // A model file written before the transformer fields existed still loads, with them off.
        let old = c.json().replacingOccurrences(
            of:
                #","transformerContent":false,"transformerHeads":2,"transformerLayers":1,"transformerLength":0,"transformerTime":true"#,
            with: ""
        ).replacingOccurrences(of: #""skipEvents":false,"#, with: "")
        #expect(!old.contains("transformer") && !old.contains("skipEvents"), "\(old)")
        #expect(try RankerConfig.fromJSON(old) == c)
        bad = c
        bad.transformerLength = 5; bad.transformerHeads = 2
        #expect(throws: RankerError.self) { try bad.validate() }  // dim 3 is not divisible by 2 heads
    }

    @Test("CSV errors name the file, row and field")
    func csvErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ranker-csv-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("bad.csv").path
        try "label,user,item\r\n1,3,4\r\n0,5,x\r\n".write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try CTRData.readCSV(path: path)
            Issue.record("no error")
        } catch let e as RankerError {
            #expect(e.description.contains("bad.csv: row 3: field 'item' is 'x'"), "\(e)")
        }
        try "label,user,item\n1,3,4\n0,5,6\n".write(toFile: path, atomically: true, encoding: .utf8)
        let d = try CTRData.readCSV(path: path)
        #expect(d.count == 2 && d.ids == [3, 4, 5, 6] && d.labels == [[1, 0]] && d.groups == [3, 5])
    }
}

import Collective
import Evaluation
import Foundation
import Learning
import Linalg
import Ranking
import Testing

/// Quality floor of the transformer ranker on small seeded data where only the history tells:
/// every example has its own user (the user field carries nothing), each user prefers one of 5
/// categories of the 20 pins (category = pin mod 5; content = the category's one-hot + noise):
/// 70% of their 12 past events; the label is Bernoulli(0.05 + 0.9·share of the candidate's
/// category among those events). A ranker without sequences ranks at chance; a
/// transformer that learned nothing too.
@Suite("Transformer ranker quality on seeded history data", .serialized)
struct TransformerQualityTests {
    static let pins = 20, categories = 5, events = 12

    /// `n` examples (users `first ..< first + n`) and the true probabilities.
    static func data(n: Int, first: Int, seed: UInt64) -> (CTRData, [Double]) {
        var r = RandomStream(seed: seed)
        // Pin content: the category's one-hot plus noise (a fixed vector per pin).
        var e = RandomStream(seed: 99)
        let embedding = (0..<pins * categories).map {
            Float(($0 / categories) % categories == $0 % categories ? 1 : 0) + Float(e.normal() * 0.2)
        }
        var ids: [Int64] = [], labels: [Float] = [], truth: [Double] = [], content: [Float] = []
        var offsets = [0], pin: [Int64] = [], type: [UInt8] = [], time: [Int64] = [], category: [Int32] = []
        for i in 0..<n {
            let preferred = r.int(below: categories)
            var inCategory = [Int](repeating: 0, count: categories)
            for j in 0..<events {
                let c = r.uniform() < 0.7 ? preferred : r.int(below: categories)
                inCategory[c] += 1
                pin.append(Int64(c + categories * r.int(below: pins / categories)))
                type.append(UInt8(1 + r.int(below: 3)))
                time.append(Int64(j) * 600_000)
                category.append(Int32(c))
            }
            offsets.append(pin.count)
            let candidate = r.int(below: pins)
            let p = 0.05 + 0.9 * Double(inCategory[candidate % categories]) / Double(events)
            ids += [Int64(pins + first + i), Int64(candidate)]
            content += embedding[candidate * categories..<(candidate + 1) * categories]
            labels.append(r.uniform() < p ? 1 : 0)
            truth.append(p)
        }
        var d = CTRData(fields: 2, ids: ids, labels: [labels])
        d.groups = (0..<n).map { Int64($0) }
        d.contentWidth = categories
        d.content = content
        d.sequences = SequenceSource(
            offsets: offsets, pin: pin, type: type, time: time, category: category, pinEmbedding: embedding,
            width: categories,
            exampleUser: Array(0..<n), exampleTime: [Int64](repeating: Int64(events) * 600_000, count: n),
            exampleCategory: [Int32](repeating: 0, count: n))
        return (d, truth)
    }

    static func config(transformer: Bool) -> RankerConfig {
        var c = RankerConfig()
        c.fields = 2; c.dim = 8; c.tableRows = pins + 20_000; c.hashIDs = false; c.contentWidth = categories
        c.crossLayers = 1; c.experts = 1; c.expertWidths = [16]; c.towerWidths = [1]
        c.tasks = ["save"]; c.taskWeights = [1]; c.candidateField = 1; c.seed = 5
        if transformer { c.transformerLength = events; c.transformerHeads = 2; c.transformerContent = true }
        return c
    }

    @Test("dcn+transformer beats the no-sequence DCN by ≥ 0.15 test AUC and reaches ≥ 0.70 (oracle ≈ 0.8)")
    func beatsNoSequence() throws {
        let (train, _) = Self.data(n: 8_000, first: 0, seed: 1)
        let (valid, _) = Self.data(n: 1_000, first: 8_000, seed: 2)
        let (test, truth) = Self.data(n: 2_000, first: 9_000, seed: 3)
        let labels = test.labels[0].map { $0 > 0.5 }
        var options = RankerTrainingOptions()
        options.epochs = 4; options.batchSize = 128; options.learningRate = 5e-3; options.calibration = "none"
        options.patience = 4
        let comm = try Communicator.world()
        var auc: [Bool: Double] = [:]
        for transformer in [false, true] {
            let outcome = try RankerTrainer.train(
                config: Self.config(transformer: transformer), train: train, valid: valid, options: options,
                comm: comm)
            let z = try RankerTrainer.score(any: outcome.model, test, comm: comm)[0]
            auc[transformer] = try #require(ClassificationMetrics.auc(scores: z, labels: labels))
        }
        let oracle = try #require(ClassificationMetrics.auc(scores: truth, labels: labels))
        let with = try #require(auc[true]), without = try #require(auc[false])
        #expect(without < 0.58, "no sequence: \(without) (the user field must carry nothing)")
        #expect(with >= without + 0.15, "transformer \(with), no sequence \(without), oracle \(oracle)")
        #expect(with >= 0.70, "transformer \(with), oracle \(oracle)")
    }
}

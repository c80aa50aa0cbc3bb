import Evaluation
import Foundation
import Linalg
import Testing

@Suite("Embedding adapter")
struct EmbeddingAdapterTests {
    /// A random orthogonal (d, d) matrix, row-major: Gram–Schmidt of a normal matrix.
    static func rotation(d: Int, seed: UInt64) -> [Double] {
        var r = RandomStream(seed: seed)
        var q = [[Double]]()
        while q.count < d {
            var v = (0..<d).map { _ in r.normal() }
            for u in q {
                let dot = zip(u, v).reduce(0) { $0 + $1.0 * $1.1 }
                v = zip(v, u).map { $0 - dot * $1 }
            }
            let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
            q.append(v.map { $0 / norm })
        }
        return q.flatMap { $0 }
    }

    @Test("dgels solves a small system by hand: x + y = 3, x − y = 1, 2x = 4 → (2, 1)")
    func leastSquaresByHand() throws {
        let x = try BLAS.leastSquares(a: [1, 1, 1, -1, 2, 0], m: 3, n: 2, b: [3, 1, 4], r: 1)
        #expect(abs(x[0] - 2) < 1e-12 && abs(x[1] - 1) < 1e-12)
        #expect(throws: LAPACKError.self) { try BLAS.leastSquares(a: [1, 2, 2, 4], m: 2, n: 2, b: [1, 1], r: 1) }
    }

    @Test("Recovers a planted rotation plus a bias under noise; the mapped old vectors match the new ones")
    func recoversPlantedRotation() throws {
        let n = 600, d = 8
        let q = Self.rotation(d: d, seed: 11)
        let bias = (0..<d).map { Double($0) * 0.1 - 0.3 }
        var r = RandomStream(seed: 12)
        var old: [Float] = [], new: [Float] = []
        for _ in 0..<n {
            let x = (0..<d).map { _ in r.normal() }
            old += x.map(Float.init)
            for c in 0..<d {
                var y = bias[c] + r.normal() * 0.05
                for j in 0..<d { y += x[j] * q[j * d + c] }
                new.append(Float(y))
            }
        }
        let adapter = try EmbeddingAdapter.fit(old: old, new: new, dOld: d, dNew: d)
        let linearError = (0..<(d * d)).map { abs(adapter.weights[$0] - q[$0]) }.max()!
        let biasError = (0..<d).map { abs(adapter.weights[d * d + $0] - bias[$0]) }.max()!
        #expect(linearError < 0.02 && biasError < 0.02, "max |W − Q| = \(linearError), bias error \(biasError)")
        let ids = (0..<n).map(Int64.init)
        let raw = EmbeddingDrift(baseIDs: ids, base: old, newIDs: ids, new: new, d: d)
        let mapped = EmbeddingDrift(baseIDs: ids, base: adapter.apply(old), newIDs: ids, new: new, d: d)
        // Unmapped, the two versions barely agree; mapped, they do up to the noise.
        #expect(raw.meanCosine < 0.5 && mapped.meanCosine > 0.99, "raw \(raw.meanCosine), mapped \(mapped.meanCosine)")
    }
}

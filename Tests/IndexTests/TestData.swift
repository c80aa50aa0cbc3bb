import Collective
import Foundation
import Linalg

/// Seeded test data: `n` points around `clusters` N(0, 1) centres with `noise` std, (n, d).
func clustered(n: Int, d: Int, clusters: Int, noise: Double = 0.3, seed: UInt64 = 7, normalise: Bool = false) -> [Float]
{
    var centres = [Float](repeating: 0, count: clusters * d)
    var rng = RandomStream(seed: seed, rank: 1)
    for i in centres.indices { centres[i] = Float(rng.normal()) }
    var out = [Float](repeating: 0, count: n * d)
    for i in 0..<n {
        var r = RandomStream(seed: seed, index: UInt64(i))
        let c = r.int(below: clusters)
        var norm: Float = 0
        for j in 0..<d {
            out[i * d + j] = centres[c * d + j] + Float(noise * r.normal())
            norm += out[i * d + j] * out[i * d + j]
        }
        if normalise { for j in 0..<d { out[i * d + j] /= norm.squareRoot() } }
    }
    return out
}

/// Rows `range` of a row-major (n, d) buffer.
func rows(_ x: [Float], _ range: Range<Int>, d: Int) -> [Float] {
    Array(x[(range.lowerBound * d)..<(range.upperBound * d)])
}

/// The one-rank world (tests run without mpirun).
func world() throws -> Communicator { try Communicator.world() }

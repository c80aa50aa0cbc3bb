import Foundation
import Linalg
import Testing

/// Naive reference: op(a) · op(b) in Double.
func naiveGemm(_ a: Matrix, _ b: Matrix, ta: Bool, tb: Bool) -> [Double] {
    let (m, k) = ta ? (a.cols, a.rows) : (a.rows, a.cols)
    let n = tb ? b.rows : b.cols
    var out = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let x = ta ? a[p, i] : a[i, p]
                let y = tb ? b[j, p] : b[p, j]
                s += Double(x) * Double(y)
            }
            out[i * n + j] = s
        }
    }
    return out
}

func randomMatrix(_ rows: Int, _ cols: Int, _ rng: inout RandomStream) -> Matrix {
    Matrix(rows: rows, cols: cols, data: (0..<rows * cols).map { _ in rng.uniformFloat() * 2 - 1 })
}

@Suite("Linalg")
struct LinalgTests {
    static let shapes: [(Int, Int, Int)] = [
        (1, 1, 1), (0, 3, 4), (3, 0, 4), (3, 4, 0), (7, 5, 3), (2, 9, 17), (33, 1, 8), (64, 48, 31),
    ]

    @Test("gemm matches naive loops for every transpose combination", arguments: shapes)
    func gemmAgainstNaive(shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        var rng = RandomStream(seed: 42, index: UInt64(m * 10_000 + n * 100 + k))
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = ta ? randomMatrix(k, m, &rng) : randomMatrix(m, k, &rng)
            let b = tb ? randomMatrix(n, k, &rng) : randomMatrix(k, n, &rng)
            let c = Matrix.gemm(a, b, transposeA: ta, transposeB: tb)
            #expect(c.rows == m && c.cols == n)
            let ref = naiveGemm(a, b, ta: ta, tb: tb)
            for i in 0..<ref.count { #expect(abs(Double(c.data[i]) - ref[i]) < 1e-4, "ta=\(ta) tb=\(tb) element \(i)") }
        }
    }

    @Test("gemm with alpha, beta and an existing C")
    func gemmAlphaBeta() {
        var rng = RandomStream(seed: 3)
        let a = randomMatrix(5, 4, &rng), b = randomMatrix(4, 6, &rng), c0 = randomMatrix(5, 6, &rng)
        let c = Matrix.gemm(a, b, alpha: 0.5, beta: 2, c: c0)
        let ref = naiveGemm(a, b, ta: false, tb: false)
        for i in 0..<ref.count { #expect(abs(Double(c.data[i]) - (0.5 * ref[i] + 2 * Double(c0.data[i]))) < 1e-4) }
        // k = 0 scales C by beta only.
        let e = Matrix.gemm(Matrix(rows: 5, cols: 0), Matrix(rows: 0, cols: 6), beta: 3, c: c0)
        #expect(e.data == c0.data.map { $0 * 3 })
    }

    @Test("gemv, dot, axpy, norm and transpose against loops")
    func level1And2() {
        var rng = RandomStream(seed: 9)
        let a = randomMatrix(7, 5, &rng)
        let x = (0..<5).map { _ in rng.uniformFloat() }
        let xt = (0..<7).map { _ in rng.uniformFloat() }
        let y = a.gemv(x)
        let yt = a.gemv(xt, transpose: true)
        for i in 0..<7 { #expect(abs(y[i] - (0..<5).reduce(Float(0)) { $0 + a[i, $1] * x[$1] }) < 1e-5) }
        for j in 0..<5 { #expect(abs(yt[j] - (0..<7).reduce(Float(0)) { $0 + a[$1, j] * xt[$1] }) < 1e-5) }
        #expect(abs(Vector.dot(x, x) - x.reduce(0) { $0 + $1 * $1 }) < 1e-5)
        #expect(abs(Vector.norm(x) - Vector.dot(x, x).squareRoot()) < 1e-5)
        var z = x
        Vector.axpy(2, x, &z)
        #expect(z == x.map { $0 * 3 })
        #expect(a.transposed.transposed == a)
        #expect(a.transposed[3, 6] == a[6, 3])
        #expect(Vector.dot([], []) == 0 && Vector.norm([]) == 0)
    }

    @Test("top-k equals a full sort, with ties broken by the smaller index")
    func topK() {
        var rng = RandomStream(seed: 5)
        for n in [0, 1, 5, 100, 1000] {
            let scores = (0..<n).map { _ in Float(rng.int(below: 50)) }  // many ties
            for k in [0, 1, 3, 10, n, n + 5] {
                let got = TopK.largest(scores, k: k)
                let want = scores.enumerated().sorted {
                    $0.element != $1.element ? $0.element > $1.element : $0.offset < $1.offset
                }
                .prefix(k).map { TopKHeap.Entry(id: Int64($0.offset), score: $0.element) }
                #expect(got == Array(want), "n=\(n) k=\(k)")
            }
        }
        #expect(TopK.smallest([3, 1, 2], k: 2).map(\.id) == [1, 2])
        #expect(TopK.largest([1, .nan, 3], k: 3).map(\.id) == [2, 0])
    }

    @Test("random streams are reproducible, distinct per (seed, rank, index), and restorable")
    func streams() {
        var a = RandomStream(seed: 1, rank: 0, index: 7)
        var b = RandomStream(seed: 1, rank: 0, index: 7)
        var c = RandomStream(seed: 1, rank: 1, index: 7)
        var d = RandomStream(seed: 1, rank: 0, index: 8)
        let sa = (0..<8).map { _ in a.next() }
        #expect(sa == (0..<8).map { _ in b.next() })
        #expect(sa != (0..<8).map { _ in c.next() })
        #expect(sa != (0..<8).map { _ in d.next() })
        var r = RandomStream(state: a.state)
        #expect((0..<4).map { _ in r.next() } == (0..<4).map { _ in a.next() })
    }

    @Test("uniform, normal, Zipf and categorical have the right moments and frequencies")
    func distributions() {
        var rng = RandomStream(seed: 11)
        let n = 200_000
        let u = (0..<n).map { _ in rng.uniform() }
        #expect(u.allSatisfy { $0 >= 0 && $0 < 1 })
        #expect(abs(u.reduce(0, +) / Double(n) - 0.5) < 0.005)
        let z = (0..<n).map { _ in rng.normal() }
        let mean = z.reduce(0, +) / Double(n)
        let variance = z.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
        #expect(abs(mean) < 0.01 && abs(variance - 1) < 0.02)

        // Zipf(s = 1.1) over 1...1000 against exact probabilities of the first ranks.
        let zipf = ZipfDistribution(n: 1000, exponent: 1.1)
        var counts = [Int](repeating: 0, count: 1001)
        for _ in 0..<n { counts[zipf.sample(&rng)] += 1 }
        let norm = (1...1000).reduce(0.0) { $0 + pow(Double($1), -1.1) }
        for r in [1, 2, 5, 10] {
            let p = pow(Double(r), -1.1) / norm
            let sd = (p * (1 - p) / Double(n)).squareRoot()
            #expect(abs(Double(counts[r]) / Double(n) - p) < 5 * sd, "Zipf rank \(r)")
        }
        #expect(counts[0] == 0)
        let big = ZipfDistribution(n: 3_000_000_000, exponent: 0.8)
        #expect((0..<1000).allSatisfy { _ in (1...3_000_000_000).contains(big.sample(&rng)) })

        let weights = [0.1, 0.0, 0.6, 0.3]
        let cat = CategoricalDistribution(weights: weights)
        var cc = [Int](repeating: 0, count: 4)
        for _ in 0..<n { cc[cat.sample(&rng)] += 1 }
        #expect(cc[1] == 0)
        for i in [0, 2, 3] { #expect(abs(Double(cc[i]) / Double(n) - weights[i]) < 0.005) }
    }
}

import Collective
import Foundation
import Index
import Testing

@Suite("k-means (one rank)")
struct KMeansTests {
    @Test("the L2 objective never rises", arguments: KMeansParameters.Initialization.allCases)
    func objectiveNeverRises(initialization: KMeansParameters.Initialization) throws {
        let d = 16
        let x = clustered(n: 3000, d: d, clusters: 40, noise: 0.5)
        let p = KMeansParameters(iterations: 20, tolerance: 0, seed: 3, initialization: initialization)
        let r = try KMeans(d: d, k: 32, parameters: p).train(x, comm: world())
        #expect(r.objective.count == 20)
        for i in 1..<r.objective.count {
            #expect(
                r.objective[i] <= r.objective[i - 1] * (1 + 1e-6),
                "iteration \(i): \(r.objective[i - 1]) → \(r.objective[i])")
        }
        #expect(r.objective.last! < r.objective.first!)
    }

    @Test("the inner-product objective never falls (spherical k-means on unit vectors)")
    func innerProductNeverFalls() throws {
        let d = 16
        let x = clustered(n: 2000, d: d, clusters: 20, noise: 0.4, normalise: true)
        let p = KMeansParameters(iterations: 15, tolerance: 0, initialization: .random, metric: .innerProduct)
        let r = try KMeans(d: d, k: 16, parameters: p).train(x, comm: world())
        for i in 1..<r.objective.count { #expect(r.objective[i] >= r.objective[i - 1] * (1 - 1e-6)) }
        for c in 0..<16 {
            let norm = (0..<d).reduce(Float(0)) { $0 + r.centroids[c * d + $1] * r.centroids[c * d + $1] }
            #expect(abs(norm - 1) < 1e-4, "centroid \(c) has squared norm \(norm)")
        }
    }

    @Test("more centroids give a lower error (measured independently by exact search)")
    func moreCentroidsLowerError() throws {
        let d = 8
        let x = clustered(n: 4000, d: d, clusters: 100, noise: 0.5)
        var errors: [Double] = []
        for k in [8, 32, 128] {
            let r = try KMeans(
                d: d, k: k, parameters: KMeansParameters(iterations: 15, initialization: .kMeansPlusPlus)
            ).train(x, comm: world())
            let nearest = ExactSearch.search(base: r.centroids, queries: x, d: d, k: 1)
            errors.append(nearest.distances.reduce(0.0) { $0 + Double($1) })
        }
        #expect(errors[0] > errors[1] && errors[1] > errors[2], "errors \(errors)")
    }

    @Test(
        "5 distinct points and 10 centroids: no crash, every point has a centroid on it",
        arguments: KMeansParameters.Initialization.allCases)
    func fewerPointsThanCentroids(initialization: KMeansParameters.Initialization) throws {
        let d = 4
        let x: [Float] = (0..<5).flatMap { i in (0..<d).map { Float(i * 10 + $0) } }
        let r = try KMeans(d: d, k: 10, parameters: KMeansParameters(iterations: 5, initialization: initialization))
            .train(x, comm: world())
        #expect(r.centroids.count == 10 * d)
        #expect(r.centroids.allSatisfy { $0.isFinite })
        #expect(r.sampleSize == 5)
        let nearest = ExactSearch.search(base: r.centroids, queries: x, d: d, k: 1)
        #expect(nearest.distances.allSatisfy { $0 < 1e-2 }, "\(nearest.distances)")
    }

    @Test("no points at all is a clear error")
    func noPoints() throws {
        let error = #expect(throws: IndexError.self) { _ = try KMeans(d: 4, k: 3).train([], comm: world()) }
        #expect(error?.description.contains("no training points") == true)
    }

    @Test("the same seed gives the same centroids; the sample is capped at k × maxPointsPerCentroid")
    func deterministic() throws {
        let d = 8
        let x = clustered(n: 3000, d: d, clusters: 10)
        let p = KMeansParameters(iterations: 8, seed: 11, maxPointsPerCentroid: 39)
        let a = try KMeans(d: d, k: 20, parameters: p).train(x, comm: world())
        let b = try KMeans(d: d, k: 20, parameters: p).train(x, comm: world())
        #expect(a.centroids == b.centroids)
        #expect(a.sampleSize == 20 * 39)
    }
}

import Collective
import Learning
import Linalg
import Testing

@Suite("Sharded optimizer layouts and updates")
struct OptimizerShardingTests {
    @Test(
        "dense parts cover every element exactly once, in buckets, balanced within one element",
        arguments: [1, 2, 3, 4, 7])
    func denseLayout(size: Int) {
        for (count, bucket) in [(0, 4), (1, 4), (10, 4), (23, 5), (1000, 1000), (1001, 1000), (3, 8)] {
            let layout = DenseShardLayout(count: count, bucketElements: bucket, size: size)
            var owner = [Int](repeating: -1, count: count)
            for r in 0..<size {
                let ranges = layout.ownedRanges(rank: r)
                #expect(ranges.reduce(0) { $0 + $1.count } == layout.ownedCount(rank: r))
                #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound <= $1.lowerBound })
                for range in ranges { for i in range { #expect(owner[i] == -1); owner[i] = r } }
            }
            #expect(owner.allSatisfy { $0 >= 0 }, "count \(count), bucket \(bucket), \(size) ranks")
            #expect(layout.buckets.allSatisfy { $0.count <= bucket && ($0.counts.max()! - $0.counts.min()!) <= 1 })
        }
    }

    @Test("rows belong to row % ranks at local row row / ranks; owned counts add up", arguments: [1, 2, 3, 4])
    func rowLayout(size: Int) {
        for rows in [0, 1, 5, 997] {
            let layout = RowShardLayout(rows: rows, size: size)
            #expect((0..<size).reduce(0) { $0 + layout.ownedRows(rank: $1) } == rows)
            for row in 0..<Int64(rows) {
                #expect(layout.localRow(of: row) < layout.ownedRows(rank: layout.owner(of: row)))
            }
        }
    }

    @Test(
        "an update split into owned parts equals the update of the whole buffer",
        arguments: ["sgd", "adamw", "adagrad"])
    func splitUpdate(name: String) {
        let kind: OptimizerKind =
            switch name {
            case "sgd": .sgd(momentum: 0.9)
            case "adamw": .adam(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01)
            default: .adagrad(epsilon: 1e-8, initialAccumulator: 0.1)
            }
        let n = 37
        var rng = RandomStream(seed: 5)
        let initial = (0..<n).map { _ in Float(rng.normal()) }
        let steps = (0..<4).map { _ in (0..<n).map { _ in Float(rng.normal()) } }
        var whole = initial
        let reference = Optimizer<Float>(kind, count: n)
        for g in steps {
            var grads = g
            whole.withUnsafeMutableBufferPointer { v in
                grads.withUnsafeMutableBufferPointer { reference.update(values: v, grads: $0, lr: 0.05) }
            }
        }
        let layout = DenseShardLayout(count: n, bucketElements: 10, size: 3)
        var sharded = initial
        for r in 0..<3 {
            let ranges = layout.ownedRanges(rank: r)
            let optimizer = Optimizer<Float>(kind, count: layout.ownedCount(rank: r))
            for g in steps {
                let mine = ranges.flatMap { g[$0] }
                sharded.withUnsafeMutableBufferPointer { v in
                    mine.withUnsafeBufferPointer {
                        optimizer.update(values: v, ranges: ranges, grads: $0.baseAddress!, lr: 0.05)
                    }
                }
            }
        }
        #expect(sharded == whole)
    }

    @Test("rows updated with state held at local rows equal the whole-table update")
    func rowUpdate() {
        let rows = 11, dim = 3
        var rng = RandomStream(seed: 9)
        let initial = (0..<rows * dim).map { _ in Float(rng.normal()) }
        let touched: [[Int64]] = [[0, 3, 4, 10], [3, 5], [1, 4, 10]]
        var whole = initial
        let reference = Optimizer<Float>(.adam, count: rows * dim)
        var sharded = initial
        let layout = RowShardLayout(rows: rows, size: 2)
        let owners = (0..<2).map { Optimizer<Float>(.adam, count: layout.ownedRows(rank: $0) * dim) }
        for (s, list) in touched.enumerated() {
            let grad = SparseRows<Float>(dim: dim, rows: list, grads: (0..<list.count * dim).map { Float($0) - 4 })
            reference.updateRows(table: &whole, gradient: grad, lr: 0.1, step: s + 1)
            for r in 0..<2 {
                let idx = list.indices.filter { layout.owner(of: list[$0]) == r }
                let part = SparseRows<Float>(
                    dim: dim, rows: idx.map { list[$0] }, grads: idx.flatMap { grad.grads[$0 * dim..<($0 + 1) * dim] })
                owners[r].updateRows(table: &sharded, gradient: part, lr: 0.1, step: s + 1) { layout.localRow(of: $0) }
            }
        }
        #expect(sharded == whole)
    }

    @Test("on one rank, reduce-to-owners is the de-duplicated local gradient")
    func reduceToOwnersLocal() throws {
        let comm = try Communicator.world()
        let out = try SparseExchange.reduceToOwners(
            SparseRows<Float>(dim: 1, rows: [4, 2, 4], grads: [1, 2, 3]), layout: RowShardLayout(rows: 5, size: 1),
            comm: comm)
        #expect(out.rows == [2, 4] && out.grads == [2, 4])
    }
}

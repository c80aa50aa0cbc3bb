import ArgumentParser
import Collective
import Foundation

/// `mosaic-selftest`: per-rank checks that the multi-rank test suite launches under mpirun
/// (`MPIRun.selftest`). A test tool, not a product: it is never installed or documented for
/// users.
@main
struct SelfTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mosaic-selftest",
        abstract: "Multi-rank self-checks used by the test suite (run under mpirun); not a user tool.",
        subcommands: [
            SelfTestCollectives.self, SelfTestArtifacts.self, SelfTestFeatures.self, SelfTestTrain.self,
            SelfTestMetrics.self, SelfTestDrift.self,
        ])
}

/// Every collective on data whose result each rank can compute independently, at MPI's normal
/// call size and with `maxElementsPerCall` forced small so that the chunked paths run.
struct SelfTestCollectives: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "collectives")

    @Option(help: "Small per-call element limit used for the chunked pass.") var chunk = 5

    func run() throws {
        Communicator.runJob { world in
            var checks = 0
            for limit in [Int(Int32.max), chunk] {
                var comm = world
                comm.maxElementsPerCall = limit
                checks += try runChecks(comm, tag: limit == chunk ? "chunk=\(limit)" : "unchunked")
                checks += try runNonblockingChecks(comm, tag: limit == chunk ? "chunk=\(limit)" : "unchunked")
            }
            world.log("selftest collectives: \(checks) checks passed on \(world.size) rank(s)")
            if world.isRoot { print("SELFTEST OK ranks=\(world.size) checks=\(checks)") }
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func runChecks(_ comm: Communicator, tag: String) throws -> Int {
        let p = comm.size, r = comm.rank
        var checks = 0
        func expect(_ ok: Bool, _ what: @autoclosure () -> String) throws {
            guard ok else { throw Failure(description: "rank \(r) [\(tag)]: \(what())") }
            checks += 1
        }

        try comm.barrier()

        // allreduce sum / max / min over every element type, lengths that are not multiples of
        // the chunk.
        let n = 23
        var f = (0..<n).map { Float(r + 1) * Float($0) }
        try comm.allreduce(&f)
        try expect(f == (0..<n).map { Float(p * (p + 1) / 2) * Float($0) }, "allreduce Float sum: \(f)")
        var d = (0..<n).map { Double(r) + Double($0) * 0.5 }
        try comm.allreduce(&d, op: .max)
        try expect(d == (0..<n).map { Double(p - 1) + Double($0) * 0.5 }, "allreduce Double max: \(d)")
        var i32 = (0..<n).map { Int32(r * 10 - $0) }
        try comm.allreduce(&i32, op: .min)
        try expect(i32 == (0..<n).map { Int32(-$0) }, "allreduce Int32 min: \(i32)")
        var i64 = (0..<n).map { Int64(r) << 33 + Int64($0) }
        try comm.allreduce(&i64)
        let rankSum = Int64(p * (p - 1) / 2)
        try expect(i64 == (0..<n).map { rankSum << 33 + Int64(p * $0) }, "allreduce Int64 sum beyond 2^32: \(i64)")
        try expect(try comm.allreduce(Double(r), op: .max) == Double(p - 1), "allreduce scalar max")
        try expect(try comm.allreduce(Float(r), op: .min) == 0, "allreduce Float scalar min")

        // broadcast from the last rank.
        let root = p - 1
        var b = r == root ? (0..<17).map { Int64($0 * 3) } : [Int64](repeating: -1, count: 17)
        try comm.broadcast(&b, root: root)
        try expect(b == (0..<17).map { Int64($0 * 3) }, "broadcast Int64 from \(root)")
        let arr = try comm.broadcastArray(r == 0 ? [Float](repeating: 2.5, count: 11) : [], root: 0)
        try expect(arr == [Float](repeating: 2.5, count: 11), "broadcastArray of unknown length")
        try expect(try comm.broadcast(string: r == 0 ? "héllo" : "") == "héllo", "broadcast string")

        // allgather (same count) and allgatherv (uneven, including an empty contribution).
        let g = try comm.allgather([Int32(r), Int32(r * r)])
        try expect(g == (0..<p).flatMap { [Int32($0), Int32($0 * $0)] }, "allgather: \(g)")
        let mine = (0..<(r % 3) * 4).map { Double(r * 100 + $0) }
        let (gv, counts) = try comm.allgatherv(mine)
        let expectedCounts = (0..<p).map { ($0 % 3) * 4 }
        try expect(counts == expectedCounts, "allgatherv counts \(counts)")
        try expect(
            gv == (0..<p).flatMap { q in (0..<(q % 3) * 4).map { Double(q * 100 + $0) } }, "allgatherv values \(gv)")

        // gatherv / gather to a root.
        let (gathered, gcounts) = try comm.gatherv((0..<r + 1).map { UInt8(r * 10 + $0) }, root: root)
        if r == root {
            try expect(gcounts == (0..<p).map { $0 + 1 }, "gatherv counts")
            try expect(gathered == (0..<p).flatMap { q in (0..<q + 1).map { UInt8(q * 10 + $0) } }, "gatherv values")
        } else {
            try expect(gathered.isEmpty, "gatherv on a non-root rank returns nothing")
        }
        let one = try comm.gather(Int64(r * 7), root: 0)
        try expect(r != 0 || one == (0..<p).map { Int64($0 * 7) }, "gather")

        // alltoall: element j of rank i's block for rank q is 1000 i + 10 q + j.
        let k = 3
        let send = (0..<p).flatMap { q in (0..<k).map { Int64(1000 * r + 10 * q + $0) } }
        let a2a = try comm.alltoall(send)
        try expect(a2a == (0..<p).flatMap { q in (0..<k).map { Int64(1000 * q + 10 * r + $0) } }, "alltoall \(a2a)")

        // alltoallv with uneven counts: rank i sends (i + q) % 4 * 3 elements to rank q.
        let sc = (0..<p).map { q in (r + q) % 4 * 3 }
        let sv = (0..<p).flatMap { q in (0..<sc[q]).map { Float(r * 1000 + q * 10) + Float($0) } }
        let (rv, rcounts) = try comm.alltoallv(sv, sendCounts: sc)
        try expect(rcounts == (0..<p).map { q in (q + r) % 4 * 3 }, "alltoallv counts \(rcounts)")
        try expect(
            rv == (0..<p).flatMap { q in (0..<(q + r) % 4 * 3).map { Float(q * 1000 + r * 10) + Float($0) } },
            "alltoallv values")

        // reduceScatter with uneven parts (one empty), then allgatherv(inPlace:) of the parts:
        // element j of rank i's input is i + j; part q has (q % 3) + 1 elements except part 1 (0).
        let parts = (0..<p).map { $0 == 1 ? 0 : $0 % 3 + 1 }
        let total = parts.reduce(0, +)
        let input = (0..<total).map { Double(r + $0) }
        var part = [Double](repeating: -1, count: parts[r])
        if total > comm.maxElementsPerCall {  // one call only: larger buffers are the caller's to bucket
            do {
                try input.withUnsafeBufferPointer { inp in
                    try part.withUnsafeMutableBufferPointer { try comm.reduceScatter(inp, into: $0, counts: parts) }
                }
                try expect(false, "reduceScatter over the per-call limit should throw")
            } catch let e as CollectiveError {
                try expect(e.call == "reduceScatter", "error names the call: \(e)")
            }
        } else {
            try input.withUnsafeBufferPointer { inp in
                try part.withUnsafeMutableBufferPointer { try comm.reduceScatter(inp, into: $0, counts: parts) }
            }
            let offset = exclusiveSum(parts)[r]
            let sumOfRanks = Double(p * (p - 1) / 2)
            try expect(
                part == (0..<parts[r]).map { sumOfRanks + Double(p * (offset + $0)) }, "reduceScatter part \(part)")
            var gathered = [Double](repeating: -1, count: total)
            gathered.replaceSubrange(offset..<offset + parts[r], with: part)
            try gathered.withUnsafeMutableBufferPointer { try comm.allgatherv(inPlace: $0, counts: parts) }
            try expect(gathered == (0..<total).map { sumOfRanks + Double(p * $0) }, "allgatherv(inPlace:) \(gathered)")
        }

        // A wrong call is an error naming the call, not a crash.
        do {
            _ = try comm.alltoallv([Float(1)], sendCounts: [Int](repeating: 0, count: p))
            try expect(false, "alltoallv with mismatched counts should throw")
        } catch let e as CollectiveError {
            try expect(e.call == "alltoallv", "error names the call: \(e)")
        }
        try comm.barrier()
        return checks
    }
}

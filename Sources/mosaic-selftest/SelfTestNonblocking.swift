import Collective

extension SelfTestCollectives {
    /// The non-blocking collectives (`startReduceScatter`, `startAllgatherv(inPlace:)`,
    /// `startAlltoallv`, `startAllreduce`): several in flight at once, driven by `test()` and
    /// finished by `wait()`, with results every rank can compute on its own. With a small
    /// `maxElementsPerCall` every message is chunked.
    func runNonblockingChecks(_ comm: Communicator, tag: String) throws -> Int {
        let p = comm.size, r = comm.rank
        var checks = 0
        func expect(_ ok: Bool, _ what: @autoclosure () -> String) throws {
            guard ok else { throw Failure(description: "rank \(r) [\(tag), non-blocking]: \(what())") }
            checks += 1
        }

        // Two reduce-scatters in flight (Float and Double), uneven parts with an empty one;
        // element j of rank i's input is i + j (Float: (i + 1)·j).
        let parts = (0..<p).map { $0 == 1 ? 0 : $0 % 3 + 4 }
        let total = parts.reduce(0, +)
        let offset = exclusiveSum(parts)[r]
        let inputD = (0..<total).map { Double(r + $0) }
        let inputF = (0..<total).map { Float(r + 1) * Float($0) }
        var partD = [Double](repeating: -1, count: parts[r])
        var partF = [Float](repeating: -1, count: parts[r])
        try inputD.withUnsafeBufferPointer { inD in
            try inputF.withUnsafeBufferPointer { inF in
                try partD.withUnsafeMutableBufferPointer { outD in
                    try partF.withUnsafeMutableBufferPointer { outF in
                        let a = try comm.startReduceScatter(inD, into: outD, counts: parts)
                        let b = try comm.startReduceScatter(inF, into: outF, counts: parts)
                        var spins = 0
                        while try !CollectiveRequest.testAll([a, b]) { spins += 1 }
                        try expect(a.isComplete && b.isComplete, "test() reports completion")
                    }
                }
            }
        }
        let sumOfRanks = Double(p * (p - 1) / 2)
        try expect(
            partD == (0..<parts[r]).map { sumOfRanks + Double(p * (offset + $0)) }, "startReduceScatter Double \(partD)"
        )
        try expect(
            partF == (0..<parts[r]).map { Float(p * (p + 1) / 2) * Float(offset + $0) },
            "startReduceScatter Float \(partF)")

        // Max instead of sum, finished by wait().
        var partMax = [Int64](repeating: 0, count: parts[r])
        let inputI = (0..<total).map { Int64(r * 1000 + $0) }
        try inputI.withUnsafeBufferPointer { inp in
            try partMax.withUnsafeMutableBufferPointer {
                try comm.startReduceScatter(inp, into: $0, counts: parts, op: .max).wait()
            }
        }
        try expect(
            partMax == (0..<parts[r]).map { Int64((p - 1) * 1000 + offset + $0) }, "startReduceScatter max \(partMax)")

        // Allgatherv in place of the reduced parts.
        var gathered = [Double](repeating: -1, count: total)
        gathered.replaceSubrange(offset..<offset + parts[r], with: partD)
        try gathered.withUnsafeMutableBufferPointer { try comm.startAllgatherv(inPlace: $0, counts: parts).wait() }
        try expect(gathered == (0..<total).map { sumOfRanks + Double(p * $0) }, "startAllgatherv(inPlace:) \(gathered)")

        // Alltoallv with known counts: rank i sends (i + q) % 3 * 4 elements to rank q.
        let sc = (0..<p).map { q in (r + q) % 3 * 4 }
        let rc = (0..<p).map { q in (q + r) % 3 * 4 }
        let sv = (0..<p).flatMap { q in (0..<sc[q]).map { Int32(r * 1000 + q * 10 + $0) } }
        var rv = [Int32](repeating: -1, count: rc.reduce(0, +))
        try sv.withUnsafeBufferPointer { s in
            try rv.withUnsafeMutableBufferPointer { out in
                let req = try comm.startAlltoallv(s, sendCounts: sc, into: out, receiveCounts: rc)
                while try !req.test() {}
            }
        }
        try expect(
            rv == (0..<p).flatMap { q in (0..<rc[q]).map { Int32(q * 1000 + r * 10 + $0) } }, "startAlltoallv \(rv)")

        // Allreduce (MPI_Iallreduce) of a buffer longer than the chunk, overlapped with a
        // reduce-scatter.
        var sums = (0..<17).map { Float(r + 1) * Float($0) }
        var again = [Double](repeating: -1, count: parts[r])
        try sums.withUnsafeMutableBufferPointer { buf in
            try inputD.withUnsafeBufferPointer { inD in
                try again.withUnsafeMutableBufferPointer { out in
                    let a = try comm.startAllreduce(buf)
                    let b = try comm.startReduceScatter(inD, into: out, counts: parts)
                    try CollectiveRequest.waitAll([b, a])
                }
            }
        }
        try expect(sums == (0..<17).map { Float(p * (p + 1) / 2) * Float($0) }, "startAllreduce \(sums)")
        try expect(again == partD, "reduce-scatter overlapped with an allreduce")

        // Tags: even ranks start two allgathers in one order, odd ranks in the other; distinct
        // tags keep their messages apart.
        var first = [Int64](repeating: -1, count: p * 3), second = [Int64](repeating: -1, count: p * 2)
        for j in 0..<3 { first[r * 3 + j] = Int64(r * 10 + j) }
        for j in 0..<2 { second[r * 2 + j] = Int64(-r * 10 - j) }
        try first.withUnsafeMutableBufferPointer { f in
            try second.withUnsafeMutableBufferPointer { s in
                let a: CollectiveRequest, b: CollectiveRequest
                if r % 2 == 0 {
                    a = try comm.startAllgatherv(inPlace: f, counts: [Int](repeating: 3, count: p), tag: 7)
                    b = try comm.startAllgatherv(inPlace: s, counts: [Int](repeating: 2, count: p), tag: 8)
                } else {
                    b = try comm.startAllgatherv(inPlace: s, counts: [Int](repeating: 2, count: p), tag: 8)
                    a = try comm.startAllgatherv(inPlace: f, counts: [Int](repeating: 3, count: p), tag: 7)
                }
                try CollectiveRequest.waitAll([b, a])
            }
        }
        try expect(first == (0..<p).flatMap { q in (0..<3).map { Int64(q * 10 + $0) } }, "tagged allgather \(first)")
        try expect(second == (0..<p).flatMap { q in (0..<2).map { Int64(-q * 10 - $0) } }, "tagged allgather \(second)")
        do {
            _ = try first.withUnsafeMutableBufferPointer {
                try comm.startAllgatherv(
                    inPlace: $0, counts: [Int](repeating: 3, count: p), tag: Communicator.nonblockingTagLimit)
            }
            try expect(false, "a tag beyond the limit should throw")
        } catch let e as CollectiveError {
            try expect(e.call == "startAllgatherv(inPlace:)", "error names the call: \(e)")
        }

        // Wrong counts are an error naming the call.
        do {
            _ = try inputD.withUnsafeBufferPointer { inp in
                try partD.withUnsafeMutableBufferPointer {
                    try comm.startReduceScatter(inp, into: $0, counts: [Int](repeating: 1, count: p + 1))
                }
            }
            try expect(false, "startReduceScatter with wrong counts should throw")
        } catch let e as CollectiveError {
            try expect(e.call == "startReduceScatter", "error names the call: \(e)")
        }
        try comm.barrier()
        return checks
    }
}

import Collective
import Foundation
import Testing
import _TestSupport

@Suite("Collective, one-rank world (no mpirun)")
struct SingletonCollectiveTests {
    @Test("a process without mpirun is a local one-rank world (MPI never initialised) whose collectives are identities")
    func singleton() throws {
        var comm = try Communicator.world()
        #expect(comm.rank == 0 && comm.size == 1 && comm.isRoot)
        #expect(comm.isLocal == !Communicator.launchedByMPI)
        for limit in [Int(Int32.max), 2] {
            comm.maxElementsPerCall = limit
            var x: [Float] = [1, 2, 3, 4, 5]
            try comm.allreduce(&x)
            #expect(x == [1, 2, 3, 4, 5])
            #expect(try comm.allgatherv([Int64(4), 5, 6]).values == [4, 5, 6])
            #expect(try comm.alltoallv([Double(1), 2, 3], sendCounts: [3]).values == [1, 2, 3])
            #expect(try comm.broadcastArray([UInt8(9), 8]) == [9, 8])
            #expect(try comm.gather(Int32(3)) == [3])
        }
        #expect(!comm.processorName().isEmpty)
        let error = #expect(throws: CollectiveError.self) { _ = try comm.alltoallv([Float(1)], sendCounts: [2]) }
        #expect(error?.call == "alltoallv")
    }
}

@Suite("Collective under mpirun", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct MultiRankCollectiveTests {
    @Test(
        "every collective gives the expected result on 1, 2 and 4 ranks, chunked and unchunked", arguments: [1, 2, 4])
    func collectives(ranks: Int) throws {
        let r = try MPIRun.selftest(ranks: ranks, ["collectives", "--chunk", "3"])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.stdout.contains("SELFTEST OK ranks=\(ranks)"), "\(r.output)")
    }

    @Test("the collectives self-test passes without a launcher too (local one-rank world)")
    func localWorld() throws {
        let r = try MPIRun.selftestSingleton(["collectives", "--chunk", "3"])
        #expect(r.status == 0 && r.stdout.contains("SELFTEST OK ranks=1"), "\(r.output)")
    }

    @Test("doctor gives an OK verdict on 1, 2 and 4 ranks", arguments: [1, 2, 4])
    func doctor(ranks: Int) throws {
        let r = try MPIRun.mosaic(ranks: ranks, ["doctor"])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.stderr.contains("VERDICT: OK"), "\(r.output)")
        #expect(r.stderr.contains("\(ranks) rank(s)"), "\(r.output)")
    }
}

@Suite("Run publishing under mpirun", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct MultiRankRunTests {
    @Test("1, 2 and 4 ranks publish one run with a shard per rank and the same contents")
    func publish() throws {
        var digests: [String] = []
        for ranks in [1, 2, 4] {
            let root = try MPIRun.temporaryDirectory("runs")
            let r = try MPIRun.selftest(ranks: ranks, ["artifacts", "--root", root.path])
            #expect(r.status == 0, "\(r.output)")
            let line = r.stdout.split(separator: "\n").first { $0.hasPrefix("SELFTEST OK") }.map(String.init) ?? ""
            #expect(line.contains("ranks=\(ranks) files=\(ranks)"), "\(r.output)")
            digests.append(String(line.split(separator: " ").last ?? ""))
            #expect(
                FileManager.default.fileExists(atPath: root.appendingPathComponent("runs/selftest/MANIFEST.json").path))
            #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent(".staging/selftest").path))
        }
        #expect(Set(digests).count == 1 && !digests[0].isEmpty, "digests differ by rank count: \(digests)")
    }
}

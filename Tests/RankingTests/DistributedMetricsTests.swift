import Foundation
import Testing
import _TestSupport

@Suite(
    "Distributed metrics and calibration", .serialized, .enabled(if: MPIRun.mpirunAvailable, "mpirun is not installed"))
struct DistributedMetricsTests {
    @Test(
        "AUC, logloss, Platt and isotonic over scores spread across 1, 2, 3 (one empty) and 4 ranks equal the single-process values"
    )
    func sameAsSingleProcess() throws {
        var lines: [String] = []
        for (ranks, extra) in [(1, [String]()), (2, []), (3, ["--empty-rank", "1"]), (4, [])] {
            let r = try MPIRun.selftest(ranks: ranks, ["metrics"] + extra)
            #expect(r.status == 0, "\(r.output)")
            let line = try #require(
                r.stdout.split(separator: "\n").first { $0.hasPrefix("SELFTEST METRICS OK") }, "\(r.output)")
            // The job itself compares with the single-process computation; the printed values
            // must also agree across rank counts.
            lines.append(String(line).replacingOccurrences(of: "ranks=\(ranks) ", with: ""))
        }
        #expect(Set(lines).count == 1, "\(lines)")
    }
}

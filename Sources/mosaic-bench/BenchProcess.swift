import ArgumentParser
import Foundation
import ProcessKit

// Process helpers of the benchmarks that launch a job (`mosaic`) or this executable's own
// workers under mpirun, and peer programs, then read their `KEY a=b c=d` result lines.

/// The `mosaic` jobs executable beside this one (both are products of the same build).
var mosaicExecutable: String {
    URL(fileURLWithPath: ChildProcess.currentExecutable).deletingLastPathComponent().appendingPathComponent("mosaic")
        .path
}

/// `key=value` fields of the first stdout line of `r` starting with `prefix`.
func benchParse(_ r: ChildProcess.Result, prefix: String) throws -> [String: String] {
    guard r.status == 0, let line = r.stdout.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else {
        throw ValidationError("no \(prefix) line (status \(r.status)):\n\(r.output.suffix(2000))")
    }
    var out: [String: String] = [:]
    for token in line.split(separator: " ") {
        let kv = token.split(separator: "=", maxSplits: 1)
        if kv.count == 2 { out[String(kv[0])] = String(kv[1]) }
    }
    return out
}

/// Runs `executable args…` on `n` ranks under mpirun (one BLAS thread per rank) and captures
/// its output. `executable` defaults to the `mosaic` jobs; pass `ChildProcess.currentExecutable`
/// for this benchmark's own workers.
func benchRun(
    _ n: Int, _ args: [String], executable: String = mosaicExecutable, forwardStderr: Bool = false
) throws -> ChildProcess.Result {
    var a = ["mpirun", "-np", "\(n)", "--oversubscribe", "--bind-to", "none"]
    if getuid() == 0 { a.append("--allow-run-as-root") }
    a += ["-x", "OPENBLAS_NUM_THREADS", executable] + args
    return try ChildProcess.run("/usr/bin/env", a, forwardStderr: forwardStderr)
}

/// Runs a Python peer benchmark (`python script args…`) outside MPI with `OMP_NUM_THREADS` =
/// `threads`, echoes its output to stderr, and returns the value of its line `PEER_EPS=…` —
/// nil, with a note, when the peer fails.
func runPythonPeer(python: String, script: String, arguments: [String], threads: Int) throws -> Double? {
    let r = try ChildProcess.run(python, [script] + arguments, environment: ["OMP_NUM_THREADS": "\(threads)"])
    FileHandle.standardError.write(Data(r.output.utf8))
    guard r.status == 0, let line = r.stdout.split(separator: "\n").first(where: { $0.hasPrefix("PEER_EPS=") }) else {
        FileHandle.standardError.write(Data("peer failed (status \(r.status)); no peer figure\n".utf8))
        return nil
    }
    return Double(line.dropFirst("PEER_EPS=".count))
}

/// The rank counts of a `--ranks 1,2` option.
func benchRankCounts(_ option: String) throws -> [Int] {
    let counts = option.split(separator: ",").compactMap { Int($0) }
    guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 }) else {
        throw ValidationError("--ranks needs one or more counts ≥ 1, comma-separated")
    }
    return counts
}

/// An empty work folder at `path` (whatever was there is removed).
func freshDirectory(_ path: String) throws -> URL {
    let url = URL(fileURLWithPath: path)
    try? FileManager.default.removeItem(at: url)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

import ArgumentParser
import Foundation

// Process helpers shared by the benchmarks that launch `mosaic` itself under mpirun and
// peer programs, then read their `KEY a=b c=d` result lines.

/// `key=value` fields of the first stdout line of `r` starting with `prefix`.
func benchParse(_ r: (status: Int32, output: String, stdout: String), prefix: String) throws -> [String: String] {
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

/// Runs `mosaic args…` (this executable) on `n` ranks under mpirun and captures its output.
func benchRun(_ n: Int, _ args: [String]) throws -> (status: Int32, output: String, stdout: String) {
    var a = ["mpirun", "-np", "\(n)", "--oversubscribe", "--bind-to", "none"]
    if getuid() == 0 { a.append("--allow-run-as-root") }
    let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    a += ["-x", "OPENBLAS_NUM_THREADS", me] + args
    return try benchProcess("/usr/bin/env", a)
}

/// Runs a program with one BLAS thread and no inherited MPI launch variables; returns its
/// status, stdout + stderr, and stdout.
func benchProcess(_ exe: String, _ args: [String]) throws -> (status: Int32, output: String, stdout: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    var env = ProcessInfo.processInfo.environment.filter { k, _ in !(k.hasPrefix("OMPI_COMM") || k.hasPrefix("PMIX_")) }
    env["OPENBLAS_NUM_THREADS"] = "1"
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    nonisolated(unsafe) var errData = Data()
    let done = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        errData = err.fileHandleForReading.readDataToEndOfFile(); done.signal()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    done.wait()
    p.waitUntilExit()
    let stdout = String(decoding: outData, as: UTF8.self)
    return (p.terminationStatus, stdout + String(decoding: errData, as: UTF8.self), stdout)
}

/// Runs a Python peer benchmark (`python script args…`) outside MPI (the launcher's OMPI_/PMIX_
/// variables are dropped, `OMP_NUM_THREADS` = `threads`), echoes its output to stderr, and
/// returns the value of its line `PEER_EPS=…` — nil, with a note, when the peer fails.
func runPythonPeer(python: String, script: String, arguments: [String], threads: Int) throws -> Double? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [script] + arguments
    var env = ProcessInfo.processInfo.environment.filter { !($0.key.hasPrefix("OMPI_") || $0.key.hasPrefix("PMIX_")) }
    env["OMP_NUM_THREADS"] = "\(threads)"
    process.environment = env
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    FileHandle.standardError.write(Data(output.utf8))
    guard process.terminationStatus == 0,
        let line = output.split(separator: "\n").first(where: { $0.hasPrefix("PEER_EPS=") })
    else {
        FileHandle.standardError.write(Data("peer failed (status \(process.terminationStatus)); no PyTorch figure\n".utf8))
        return nil
    }
    return Double(line.dropFirst("PEER_EPS=".count))
}

import Foundation
import ProcessKit

/// Launches the built executables from a test: `mosaic` (the jobs) and `mosaic-selftest` (the
/// per-rank self-tests), under `mpirun -np N`, the way the multi-rank tests check that 1, 2
/// and 4 ranks agree; and `mosaic-serve`, as a real process.
public enum MPIRun {
    /// What a launched program printed and how it ended.
    public typealias Result = ChildProcess.Result

    /// The folder holding the built products (the executables sit beside the test bundle).
    public static var productsDirectory: URL {
        let bundle = Bundle.allBundles.first { $0.bundlePath.hasSuffix(".xctest") }
        if let bundle { return bundle.bundleURL.deletingLastPathComponent() }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    /// Path of the built `mosaic` executable (the batch jobs).
    public static var mosaicPath: String { productsDirectory.appendingPathComponent("mosaic").path }
    /// Path of the built `mosaic-selftest` executable (test-only per-rank checks).
    public static var selftestPath: String { productsDirectory.appendingPathComponent("mosaic-selftest").path }
    /// Path of the built `mosaic-serve` executable (the serving shard).
    public static var servePath: String { productsDirectory.appendingPathComponent("mosaic-serve").path }

    /// True when `mpirun` is on the PATH.
    public static var mpirunAvailable: Bool { ChildProcess.which("mpirun") != nil }

    /// Runs `mosaic arguments…` on `ranks` ranks (`--oversubscribe`, `--allow-run-as-root` as
    /// root, one BLAS thread per rank), with a timeout, and returns its output.
    public static func mosaic(ranks: Int, _ arguments: [String], timeout: TimeInterval = 300) throws -> Result {
        try launch(mosaicPath, ranks: ranks, arguments, timeout: timeout)
    }

    /// Runs `mosaic-selftest arguments…` on `ranks` ranks, as `mosaic(ranks:)` does.
    public static func selftest(ranks: Int, _ arguments: [String], timeout: TimeInterval = 300) throws -> Result {
        try launch(selftestPath, ranks: ranks, arguments, timeout: timeout)
    }

    /// Runs `mosaic arguments…` directly (a one-rank world, no mpirun).
    public static func mosaicSingleton(_ arguments: [String], timeout: TimeInterval = 300) throws -> Result {
        try run(mosaicPath, arguments, timeout: timeout)
    }

    /// Runs `mosaic-selftest arguments…` directly (a one-rank world, no mpirun).
    public static func selftestSingleton(_ arguments: [String], timeout: TimeInterval = 300) throws -> Result {
        try run(selftestPath, arguments, timeout: timeout)
    }

    /// Runs any program with a clean MPI environment and one BLAS thread.
    public static func run(_ executable: String, _ arguments: [String], timeout: TimeInterval = 300) throws -> Result {
        try ChildProcess.run(executable, arguments, timeout: timeout)
    }

    static func launch(_ executable: String, ranks: Int, _ arguments: [String], timeout: TimeInterval) throws -> Result
    {
        guard let mpirun = ChildProcess.which("mpirun") else {
            return Result(status: 127, stdout: "", stderr: "mpirun not found on PATH (install openmpi-bin)")
        }
        var args = ["-np", "\(ranks)", "--oversubscribe", "--bind-to", "none"]
        if getuid() == 0 { args.append("--allow-run-as-root") }
        args += ["-x", "OPENBLAS_NUM_THREADS", executable] + arguments
        return try run(mpirun, args, timeout: timeout)
    }

    /// A fresh temporary folder for a test's files.
    public static func temporaryDirectory(_ name: String = "mosaic-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

import ArgumentParser

/// `mosaic-bench`: every benchmark of Mosaic. Each prints a table of figures and the ratio
/// against a named peer run side by side in the same run (`Cluster/bench/*.sh` call it).
@main
struct MosaicBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mosaic-bench",
        abstract: "Benchmarks: print a table of figures with the ratio against a named peer.",
        discussion: """
            Multi-rank benchmarks launch themselves (or the `mosaic` jobs beside this executable) \
            under mpirun; `collectives` is run under a launcher by hand: \
            `Cluster/mpirun-local.sh -np 2 .build/release/mosaic-bench collectives`. \
            Cluster/bench/*.sh build the release products, set up the Python peers and call these.
            """,
        subcommands: [
            BenchCollectives.self, BenchGemm.self, BenchData.self, BenchTrain.self, BenchIndex.self, BenchRank.self,
            BenchGraph.self, BenchGraphWorker.self, BenchRetrieval.self, BenchFeeds.self, BenchNightly.self,
        ])
}

// swift-tools-version: 6.0
import PackageDescription

/// Mosaic: an MPI-parallel home-feed recommender. See README.md.
///
/// Dependencies flow one way (a module imports only modules above it):
///   C modules (CMPI, CHDF5, CBLAS, CKernels), ProcessKit, Scalars (message element kinds; no MPI)
///   ← Linalg (BLAS) / Collective (MPI) / Artifacts (HDF5 files, manifest, published runs; no MPI)
///   ← EventData (schema, tables, dataset reader, point-in-time features; no MPI)
///   ← Layers (layers, losses, optimizers, calibrators; no MPI)
///   ← RankerInference (the ranker's model, features, request scorer, loading; no MPI)
///   ← Publishing (the collective run writer)
///   ← Events / Graph / Learning (re-exports Layers) / Evaluation
///   ← Models / Index / Ranking (re-exports RankerInference) ← Feed ← the `mosaic` jobs and
///   `mosaic-bench`.
/// Serving (and `mosaic-serve`) imports Artifacts, EventData, Layers and RankerInference only:
/// it links no MPI library.

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "Mosaic",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mosaic", targets: ["mosaic"]),
        .executable(name: "mosaic-bench", targets: ["mosaic-bench"]),
        .executable(name: "mosaic-serve", targets: ["mosaic-serve"]),
        .library(name: "ProcessKit", targets: ["ProcessKit"]),
        .library(name: "Scalars", targets: ["Scalars"]),
        .library(name: "Layers", targets: ["Layers"]),
        .library(name: "RankerInference", targets: ["RankerInference"]),
        .library(name: "Collective", targets: ["Collective"]),
        .library(name: "Linalg", targets: ["Linalg"]),
        .library(name: "Artifacts", targets: ["Artifacts"]),
        .library(name: "EventData", targets: ["EventData"]),
        .library(name: "Publishing", targets: ["Publishing"]),
        .library(name: "Pipeline", targets: ["Pipeline"]),
        .library(name: "Events", targets: ["Events"]),
        .library(name: "Evaluation", targets: ["Evaluation"]),
        .library(name: "Learning", targets: ["Learning"]),
        .library(name: "Index", targets: ["Index"]),
        .library(name: "Feed", targets: ["Feed"]),
        .library(name: "Serving", targets: ["Serving"]),
        .library(name: "Ranking", targets: ["Ranking"]),
        .library(name: "Graph", targets: ["Graph"]),
        .library(name: "Models", targets: ["Models"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // MARK: - C modules (declarations and one-line shims for macros only)
        .systemLibrary(
            name: "CMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(
            name: "CHDF5", pkgConfig: "hdf5",
            providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(
            name: "CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),

        // SIMD kernels (portable C + AVX2/AVX-512 chosen at run time): nearest-centroid and
        // distance scans of the index, top-k selection, the serving attention kernel, prefetch.
        .target(name: "CKernels"),

        // MARK: - Foundation modules
        // This process's clock, CPU time and peak memory; the one runner of child processes.
        .target(name: "ProcessKit", swiftSettings: swiftSettings),
        // The element kinds a message carries (`MPIScalar`) and count displacements, without MPI:
        // `Real` conforms in Layers.
        .target(name: "Scalars", swiftSettings: swiftSettings),
        .target(name: "Collective", dependencies: ["CMPI", "ProcessKit", "Scalars"], swiftSettings: swiftSettings),
        .target(name: "Linalg", dependencies: ["CBLAS"], swiftSettings: swiftSettings),
        // HDF5 files, the manifest, reading a published run. No MPI: serving links it.
        .target(name: "Artifacts", dependencies: ["CHDF5"], swiftSettings: swiftSettings),

        // The nightly DAG: stage specs, the local runner (skip, resume, publish a night with
        // checksums, roll back) and the Slurm submitter. No MPI: it launches mpirun.
        .target(name: "Pipeline", dependencies: ["Artifacts"], swiftSettings: swiftSettings),

        // MARK: - Data and evaluation
        // The dataset's schema, column tables, the dataset reader, splits and point-in-time
        // features. No MPI: serving links it.
        .target(name: "EventData", dependencies: ["Artifacts"], swiftSettings: swiftSettings),
        // The collective run writer: every rank writes its shards, rank 0 publishes atomically.
        .target(name: "Publishing", dependencies: ["Artifacts", "Collective"], swiftSettings: swiftSettings),
        // CSV ingest, routing rows to their owner ranks, the synthetic world, real-data adapters,
        // the collective dataset writer.
        .target(
            name: "Events", dependencies: ["EventData", "Publishing", "Linalg", "Collective", "Artifacts"],
            swiftSettings: swiftSettings),
        // Offline metrics and protocols (no MPI, no HDF5).
        .target(name: "Evaluation", dependencies: ["Linalg", "Collective"], swiftSettings: swiftSettings),

        // MARK: - Learning
        // Layers with hand-written backward passes, losses, optimizers, calibrators, embedding
        // tables, loading their values. No MPI: serving links it.
        .target(name: "Layers", dependencies: ["Scalars", "Linalg", "Artifacts"], swiftSettings: swiftSettings),
        // The layers (re-exported) and what trains them across ranks: the data-parallel trainer,
        // gradient fusion, sharded optimizer state, sparse exchanges, distributed calibration.
        .target(
            name: "Learning", dependencies: ["Layers", "Linalg", "Collective", "Artifacts"],
            swiftSettings: swiftSettings),

        // MARK: - Retrieval index
        // Distributed k-means, IVF-Flat and IVF-PQ (build, add, remove, search, HDF5).
        .target(
            name: "Index", dependencies: ["Linalg", "Collective", "Artifacts", "CKernels"], swiftSettings: swiftSettings
        ),

        // MARK: - Graph
        // Sharded pin–board graph (CSR, hash partitioning), distributed random walks.
        .target(
            name: "Graph",
            dependencies: ["Linalg", "Collective", "Artifacts", "EventData", "Publishing", "Events", "CKernels"],
            swiftSettings: swiftSettings),

        // PinSage on the sharded graph (layers from Learning, neighbours from Graph).
        .target(
            name: "Models",
            dependencies: [
                "Linalg", "Collective", "Artifacts", "EventData", "Publishing", "Events", "Learning", "Graph",
            ],
            swiftSettings: swiftSettings),

        // MARK: - Ranking
        // The ranker's inference: config, models (DCN-v2 + MMoE, LR), features, CTR batches,
        // the request scorer, loading a saved ranker with its calibrators. No MPI: serving links it.
        .target(
            name: "RankerInference",
            dependencies: ["Layers", "EventData", "Linalg", "Artifacts", "CKernels"],
            swiftSettings: swiftSettings),
        // The ranker's training and evaluation (re-exports RankerInference): the trainer, variants,
        // sharded CTR data and routing, the world examples.
        .target(
            name: "Ranking",
            dependencies: [
                "RankerInference", "Learning", "EventData", "Events", "Evaluation", "Linalg", "Collective", "Artifacts",
                "CKernels",
            ],
            swiftSettings: swiftSettings),

        // MARK: - Feed
        // Retrieval channels → rank → re-rank; today: the content channel, the diversity re-rank
        // and every user's feed precomputed.
        .target(
            name: "Feed",
            dependencies: [
                "EventData", "Publishing", "Events", "Index", "Graph", "Models", "Ranking", "Learning", "Collective",
                "Artifacts",
            ],
            swiftSettings: swiftSettings),

        // MARK: - Serving
        // The online shard: loads published feeds (HDF5) and answers feed requests over HTTP
        // (Hummingbird), re-ranking with the session's fresh events; the night's ranker scores online
        // (`OnlineRanker`, from RankerInference: no MPI).
        .target(
            name: "Serving",
            dependencies: [
                "EventData", "Artifacts", "Layers", "RankerInference",
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings),

        // MARK: - Executables
        // The batch jobs, each a subcommand that wires its options to one library call.
        .executableTarget(
            name: "mosaic",
            dependencies: [
                "ProcessKit", "Collective", "Linalg", "Artifacts", "EventData", "Publishing", "Events", "Evaluation",
                "Learning", "Index", "Feed", "Ranking", "Graph", "Models", "Pipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),
        // Every benchmark and its peer drivers (Cluster/bench/*.sh call it).
        .executableTarget(
            name: "mosaic-bench",
            dependencies: [
                "ProcessKit", "Collective", "Linalg", "Artifacts", "EventData", "Publishing", "Events", "Evaluation",
                "Learning", "Index", "Ranking", "Graph", "Models", "CMPI", "CBLAS", "Pipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),
        // The serving shard: no MPI.
        .executableTarget(
            name: "mosaic-serve",
            dependencies: ["Serving", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings),
        // Test-only: the per-rank self-checks the multi-rank tests launch under mpirun.
        .executableTarget(
            name: "mosaic-selftest",
            dependencies: [
                "ProcessKit", "Collective", "Linalg", "Artifacts", "EventData", "Publishing", "Events", "Evaluation",
                "Learning", "Ranking", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),

        // MARK: - Tests
        // Internal helpers for tests: launching the built executables under mpirun, temp folders.
        .target(name: "_TestSupport", dependencies: ["ProcessKit"], swiftSettings: swiftSettings),
        .testTarget(
            name: "FoundationTests",
            dependencies: [
                "Collective", "Linalg", "Artifacts", "Publishing", "ProcessKit", "_TestSupport", "mosaic",
                "mosaic-selftest",
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "EventsTests",
            dependencies: [
                "EventData", "Events", "Evaluation", "Collective", "Artifacts", "Linalg", "_TestSupport", "mosaic",
                "mosaic-selftest",
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "EvaluationTests",
            dependencies: ["Evaluation", "Collective", "Linalg", "_TestSupport", "mosaic", "mosaic-selftest"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "LearningTests",
            dependencies: [
                "Learning", "Linalg", "Collective", "Artifacts", "_TestSupport", "mosaic", "mosaic-selftest",
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "IndexTests",
            dependencies: [
                "Index", "Collective", "Artifacts", "Linalg", "_TestSupport", "mosaic", "mosaic-selftest",
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "FeedTests",
            dependencies: [
                "Feed", "Models", "Events", "EventData", "Collective", "Linalg", "Artifacts", "_TestSupport", "mosaic",
                "mosaic-selftest",
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "ServingTests",
            dependencies: [
                "Serving", "EventData", "ProcessKit", "_TestSupport", "mosaic", "mosaic-serve",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "RankingTests",
            dependencies: [
                "Ranking", "RankerInference", "Serving", "CKernels", "Learning", "Evaluation", "Events", "Linalg",
                "Collective",
                "Artifacts",
                "_TestSupport",
                "mosaic",
                "mosaic-selftest",
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PipelineTests",
            dependencies: [
                "Pipeline", "Artifacts", "Events", "Serving", "ProcessKit", "_TestSupport", "mosaic", "mosaic-serve",
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "GraphTests",
            dependencies: [
                "Graph", "Models", "Index", "Learning", "EventData", "Events", "Evaluation", "Collective", "Artifacts",
                "Linalg", "_TestSupport", "mosaic", "mosaic-selftest",
            ],
            swiftSettings: swiftSettings),
    ]
)

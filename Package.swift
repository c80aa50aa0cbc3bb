// swift-tools-version: 6.0
import PackageDescription

/// Mosaic: an MPI-parallel home-feed recommender. See README.md.
///
/// Dependencies flow one way:
///   C modules ← Linalg / Collective / Artifacts ← Events, Evaluation, Learning, Index
///   ← executables.

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Mosaic",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mosaic", targets: ["mosaic"]),
        .library(name: "Collective", targets: ["Collective"]),
        .library(name: "Linalg", targets: ["Linalg"]),
        .library(name: "Artifacts", targets: ["Artifacts"]),
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

        // SIMD kernels for the index (portable C + AVX2/AVX-512 chosen at run time).
        .target(name: "CKernels"),

        // MARK: - Foundation modules
        .target(name: "Collective", dependencies: ["CMPI"], swiftSettings: swiftSettings),
        .target(name: "Linalg", dependencies: ["CBLAS"], swiftSettings: swiftSettings),
        .target(name: "Artifacts", dependencies: ["CHDF5", "Collective"], swiftSettings: swiftSettings),

        // MARK: - Data and evaluation
        // Schema, CSV ingest, synthetic world, adapters, splits, point-in-time features.
        .target(name: "Events", dependencies: ["Linalg", "Collective", "Artifacts"], swiftSettings: swiftSettings),
        // Offline metrics and protocols (no MPI, no HDF5).
        .target(name: "Evaluation", dependencies: ["Linalg", "Collective"], swiftSettings: swiftSettings),

        // MARK: - Learning
        // Layers with hand-written backward passes, losses, optimizers, data-parallel trainer.
        .target(name: "Learning", dependencies: ["Linalg", "Collective", "Artifacts"], swiftSettings: swiftSettings),

        // MARK: - Retrieval index
        // Distributed k-means, IVF-Flat and IVF-PQ (build, add, remove, search, HDF5).
        .target(name: "Index", dependencies: ["Linalg", "Collective", "Artifacts", "CKernels"], swiftSettings: swiftSettings),

        // MARK: - Graph
        // Sharded pin–board graph (CSR, hash partitioning), distributed random walks.
        .target(
            name: "Graph", dependencies: ["Linalg", "Collective", "Artifacts", "Events", "CKernels"],
            swiftSettings: swiftSettings),

        // PinSage on the sharded graph (layers from Learning, neighbours from Graph).
        .target(
            name: "Models", dependencies: ["Linalg", "Collective", "Artifacts", "Events", "Learning", "Graph"],
            swiftSettings: swiftSettings),

        // MARK: - Ranking
        // The ranker (DCN-v2 + MMoE + position tower, SIM/DIN, LR baseline), training and scoring.
        .target(
            name: "Ranking",
            dependencies: ["Learning", "Events", "Evaluation", "Linalg", "Collective", "Artifacts", "CKernels"],
            swiftSettings: swiftSettings),

        // MARK: - Feed
        // Retrieval channels → rank → re-rank; today: the content channel, the diversity re-rank
        // and every user's feed precomputed.
        .target(name: "Feed", dependencies: ["Events", "Index", "Collective", "Artifacts"], swiftSettings: swiftSettings),

        // MARK: - Serving
        // The online shard: loads published feeds (HDF5) and answers feed requests over HTTP
        // (Hummingbird), re-ranking with the session's fresh events.
        .target(
            name: "Serving",
            dependencies: ["Feed", "Events", "Artifacts", .product(name: "Hummingbird", package: "hummingbird")],
            swiftSettings: swiftSettings),

        // MARK: - Executables
        .executableTarget(
            name: "mosaic",
            dependencies: [
                "Collective", "Linalg", "Artifacts", "Events", "Evaluation", "Learning", "Index", "Feed", "Ranking", "Graph", "Models", "CMPI", "CBLAS",
                "Serving",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),

        // MARK: - Tests
        // Internal helpers for tests: launching mpirun on the built `mosaic`, temp folders.
        .target(name: "_TestSupport", swiftSettings: swiftSettings),
        .testTarget(
            name: "FoundationTests",
            dependencies: ["Collective", "Linalg", "Artifacts", "_TestSupport", "mosaic"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "EventsTests",
            dependencies: ["Events", "Evaluation", "Collective", "Artifacts", "Linalg", "_TestSupport", "mosaic"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "EvaluationTests",
            dependencies: ["Evaluation", "_TestSupport", "mosaic"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "LearningTests",
            dependencies: ["Learning", "Linalg", "Collective", "Artifacts", "_TestSupport", "mosaic"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "IndexTests",
            dependencies: ["Index", "Collective", "Artifacts", "Linalg", "_TestSupport", "mosaic"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "FeedTests",
            dependencies: ["Feed", "Linalg", "Artifacts", "_TestSupport", "mosaic"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "ServingTests",
            dependencies: [
                "Serving", "_TestSupport", "mosaic", .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "RankingTests",
            dependencies: ["Ranking", "CKernels", "Learning", "Evaluation", "Linalg", "Collective", "Artifacts", "_TestSupport", "mosaic"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "GraphTests",
            dependencies: ["Graph", "Models", "Learning", "Events", "Evaluation", "Collective", "Artifacts", "Linalg", "_TestSupport", "mosaic"],
            swiftSettings: swiftSettings),
    ]
)

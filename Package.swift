// swift-tools-version: 6.0
import PackageDescription

/// Mosaic: an MPI-parallel home-feed recommender. See README.md.
///
/// Dependencies flow one way:
///   C modules ← Linalg / Collective / Artifacts ← (Events, Graph, Learning) ← (Models, Index)
///   ← Feed ← executables.

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Mosaic",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "mosaic", targets: ["mosaic"]),
        .library(name: "Collective", targets: ["Collective"]),
        .library(name: "Linalg", targets: ["Linalg"]),
        .library(name: "Artifacts", targets: ["Artifacts"]),
        .library(name: "Index", targets: ["Index"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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

        // MARK: - Foundation modules
        .target(name: "Collective", dependencies: ["CMPI"], swiftSettings: swiftSettings),
        .target(name: "Linalg", dependencies: ["CBLAS"], swiftSettings: swiftSettings),
        .target(name: "Artifacts", dependencies: ["CHDF5", "Collective"], swiftSettings: swiftSettings),

        // MARK: - Retrieval
        // IVF-Flat / IVF-PQ over distributed k-means (issue 5).
        .target(name: "Index", dependencies: ["Linalg", "Collective", "Artifacts"], swiftSettings: swiftSettings),

        // MARK: - Executables
        .executableTarget(
            name: "mosaic",
            dependencies: [
                "Collective", "Linalg", "Artifacts", "Index", "CMPI", "CBLAS",
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
            name: "IndexTests",
            dependencies: ["Index", "Collective", "Artifacts", "Linalg", "_TestSupport", "mosaic"],
            swiftSettings: swiftSettings),
    ]
)

// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Scalpel",
    products: [
        .library(name: "ScalpelKit", targets: ["ScalpelKit"]),
        .executable(name: "scalpel", targets: ["scalpel"]),
        .executable(name: "scalpel-kernel-bench", targets: ["scalpel-kernel-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd"),
        .target(
            name: "CScalpelKernels",
            path: "Sources/CScalpelKernels",
            cSettings: [.unsafeFlags(["-O3"])]
        ),
        .target(
            name: "ScalpelKit",
            dependencies: ["CBLAS", "CZstd", "CScalpelKernels"],
            path: "Sources/ScalpelKit"
        ),
        .executableTarget(
            name: "scalpel",
            dependencies: [
                "ScalpelKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/scalpel"
        ),
        .executableTarget(
            name: "scalpel-kernel-bench",
            dependencies: ["ScalpelKit"],
            path: "Sources/scalpel-kernel-bench"
        ),
        .executableTarget(
            name: "quantize-two-tensors",
            dependencies: ["ScalpelKit"],
            path: "Examples/QuantizeTwoTensors"
        ),
        .testTarget(
            name: "ScalpelKitTests",
            dependencies: ["ScalpelKit", "CScalpelKernels"],
            path: "Tests/ScalpelKitTests"
        ),
    ]
)

// swift-tools-version:5.9
// tomobile's iOS side, laid out like apple/ml-stable-diffusion's Package.swift: a platform-free library
// (TomobileCore, Foundation only: generator, tokenizer, sampler, manifest and sha256), the Core ML glue
// (TomobileCoreML, compiled only where Core ML exists), the Core AI glue (TomobileCoreAI, compiled only where
// Core AI exists: iOS / macOS 27), a command-line tool, and the tests that read the
// same test_vectors/contract.json as the Android and web ports. The SwiftUI app sources are in App/.
import PackageDescription

let package = Package(
    name: "tomobile-ios",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [
        .library(name: "TomobileCore", targets: ["TomobileCore"]),
        .library(name: "TomobileCoreML", targets: ["TomobileCoreML"]),
        .library(name: "TomobileCoreAI", targets: ["TomobileCoreAI"]),
        .executable(name: "tomobile-swift", targets: ["TomobileCLI"]),
    ],
    targets: [
        .target(name: "TomobileCore"),
        .target(name: "TomobileCoreML", dependencies: ["TomobileCore"]),
        .target(name: "TomobileCoreAI", dependencies: ["TomobileCore"]),
        .executableTarget(name: "TomobileCLI", dependencies: ["TomobileCore", "TomobileCoreML"]),
        .testTarget(name: "TomobileCoreTests", dependencies: ["TomobileCore"]),
    ]
)

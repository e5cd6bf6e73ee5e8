// swift-tools-version: 5.9
// The platform-independent core of the iOS demo, mirroring android_demo/core (Kotlin) and the
// Python runtime: manifest + sha256, prompts, the generation loop, plan parsing, LUT layout.
import PackageDescription

let package = Package(
    name: "VeraCore",
    platforms: [.iOS(.v18), .macOS(.v15)],
    products: [.library(name: "VeraCore", targets: ["VeraCore"])],
    targets: [
        .target(name: "VeraCore"),
        // Replays the fixtures the Kotlin tests use (android_demo/core/src/test/resources/fixtures).
        .testTarget(name: "VeraCoreTests", dependencies: ["VeraCore"]),
    ]
)

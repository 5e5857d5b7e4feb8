// The screen's state (main actor) and the engine that loads the export and generates clips on one
// background queue.
import CoreGraphics
import Foundation
import SwiftUI
import TomobileCore
import TomobileCoreML

/// Where the app looks for the export folder: Documents/video-dit-tiny (copied in with Finder file
/// sharing or the Files app, see README.md).
let exportFolderName = "video-dit-tiny"

/// An export folder ready to generate: manifest, pipeline and Core ML parts. Used only on `Engine.queue`.
final class Engine {
    let exportDir: URL
    let queue = DispatchQueue(label: "tomobile.demo.engine", qos: .userInitiated)
    private var loaded: (manifest: Manifest, pipeline: Pipeline, parts: CoreMLParts)?

    init(exportDir: URL) {
        self.exportDir = exportDir
    }

    /// Manifest, checked tokenizer.json and the Core ML parts (checked, compiled once, loaded), once.
    func export() throws -> (manifest: Manifest, pipeline: Pipeline, parts: CoreMLParts) {
        if let loaded { return loaded }
        let manifest = try readManifest(exportDir)
        let tokenizerText = String(decoding: try Data(contentsOf: try manifest.verified("tokenizer.json")), as: UTF8.self)
        let tokenizer = try WordPieceTokenizer.fromTokenizerJson(tokenizerText)
        let cache = FileManager.default.urls(for: .cachesDirectory, in: .userDomainMask)[0].appendingPathComponent("tomobile-coreml")
        let parts = try CoreMLParts(manifest, cacheDirectory: cache)
        try parts.preload()
        let export = (manifest: manifest, pipeline: Pipeline(tokenizer, parts, parts, manifest.shape, manifest.captionLen), parts: parts)
        loaded = export
        return export
    }
}

@MainActor
final class DemoModel: ObservableObject {
    @Published var settings = ScreenSettings()
    @Published var reduceMemory = false
    @Published private(set) var status: String
    @Published private(set) var running = false
    @Published private(set) var frames: [CGImage] = []
    @Published private(set) var stats: GenerationStats?

    private let engine: Engine

    init() {
        let documents = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0]
        engine = Engine(exportDir: documents.appendingPathComponent(exportFolderName))
        status = "Export folder: Documents/\(exportFolderName)"
    }

    func generate() {
        guard !running else { return }
        let typed = settings
        let reduce = reduceMemory
        let engine = self.engine
        running = true
        status = "Loading (the first launch compiles the Core ML models)..."
        engine.queue.async {
            do {
                let export = try engine.export()
                export.parts.reduceMemory = reduce
                let cfg = try typed.toConfig(export.manifest.defaults)
                let gen = try export.pipeline.generate(typed.prompt, try typed.seedValue(), cfg) { step in
                    Task { @MainActor in self.status = "Step \(step.stepsDone) of \(cfg.steps) (\(step.variant))" }
                }
                let shape = export.manifest.shape
                let images = (0..<shape[2]).compactMap { makeImage(frameArgb(gen.frames, shape, $0), width: shape[4], height: shape[3]) }
                Task { @MainActor in
                    self.frames = images
                    self.stats = gen.stats
                    self.status = "Done"
                    self.running = false
                }
            } catch { // a missing or altered file, a bad setting, a Core ML error: say which
                Task { @MainActor in
                    self.status = "Error: \(error)"
                    self.running = false
                }
            }
        }
    }
}

/// ARGB pixels (0xAARRGGBB) as an opaque CGImage.
func makeImage(_ argb: [UInt32], width: Int, height: Int) -> CGImage? {
    let data = argb.withUnsafeBufferPointer { Data(buffer: $0) }
    guard let provider = CGDataProvider(data: data as CFData) else { return nil }
    let info = CGBitmapInfo(rawValue: CGImageAlphaInfo.noneSkipFirst.rawValue | CGBitmapInfo.byteOrder32Little.rawValue)
    return CGImage(width: width, height: height, bitsPerComponent: 8, bitsPerPixel: 32, bytesPerRow: width * 4,
                   space: CGColorSpaceCreateDeviceRGB(), bitmapInfo: info, provider: provider, decode: nil,
                   shouldInterpolate: false, intent: .defaultIntent)
}

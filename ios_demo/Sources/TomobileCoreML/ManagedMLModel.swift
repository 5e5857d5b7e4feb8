// One Core ML model from an .mlpackage, compiled once (cached as .mlmodelc under a name made of the
// package's sha256, so an altered package is never served from a stale cache), loaded on first use and
// released on demand: in the spirit of apple/ml-stable-diffusion's ManagedMLModel and On-device Sora's
// load -> predict -> unload of each block.
#if canImport(CoreML)
import CoreML
import Foundation

public final class ManagedMLModel {
    private let packageURL: URL
    private let compiledURL: URL
    private let configuration: MLModelConfiguration
    private let queue = DispatchQueue(label: "tomobile.ManagedMLModel")
    private var loaded: MLModel?

    /// `compiledURL`: where the compiled model is kept between launches (e.g. Caches/<sha256>.mlmodelc).
    public init(packageURL: URL, compiledURL: URL, configuration: MLModelConfiguration) {
        self.packageURL = packageURL
        self.compiledURL = compiledURL
        self.configuration = configuration
    }

    /// Compiles (first time only) and loads the model now, e.g. before the first timed call.
    public func loadResources() throws {
        try queue.sync { _ = try loadIfNeeded() }
    }

    /// Releases the loaded model; the compiled one stays on disk and the next use loads it again.
    public func unloadResources() {
        queue.sync { loaded = nil }
    }

    /// Runs `body` with the loaded model (loading it first if needed), one call at a time.
    public func perform<R>(_ body: (MLModel) throws -> R) throws -> R {
        try queue.sync { try body(try loadIfNeeded()) }
    }

    private func loadIfNeeded() throws -> MLModel {
        if let model = loaded { return model }
        let model = try MLModel(contentsOf: try compiledModel(), configuration: configuration)
        loaded = model
        return model
    }

    private func compiledModel() throws -> URL {
        let files = FileManager.default
        if files.fileExists(atPath: compiledURL.path) { return compiledURL }
        let temporary = try MLModel.compileModel(at: packageURL) // a new .mlmodelc in a temporary folder
        try files.createDirectory(at: compiledURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? files.removeItem(at: compiledURL)
        try files.moveItem(at: temporary, to: compiledURL)
        return compiledURL
    }
}
#endif

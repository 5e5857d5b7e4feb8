// The Core AI glue (iOS / macOS 27): the export's .aimodel parts (`tomobile export video-dit-tiny --format
// coreai`) behind TomobileCore's TextEncoder and Denoiser, beside CoreMLParts. Every asset is checked against
// the manifest's sha256 before it is loaded. The framework calls are the ones Apple's published Swift sources
// make (apple/coreai-models, e.g. swift/Sources/CoreAIDiffusionPipeline/Components/
// CoreAIDiffusionModelFunction.swift): `AIModel(contentsOf:options:)`, `loadFunction(named:)`,
// `descriptor.inputNames` / `inputDescriptor(of:)`, `NDArray(descriptor:)` with `mutableView(as:)`, and
// `InferenceFunction.run(inputs:)`. Not compiled or run here (no Swift toolchain on Linux): see
// docs/coreai.md for what was checked.
#if canImport(CoreAI)
import CoreAI
import Foundation
import TomobileCore

/// The input order tomobile's denoiser graphs take (manifest io.denoiser_inputs).
private let denoiserInputNames = ["x", "t", "states", "mask", "guidance"]

/// Input values as the app holds them; each is written in the scalar type the asset declares
/// (Core AI takes token ids as int32, an fp16 export takes float16).
private enum Values {
    case floats([Float])
    case ints([Int64])
}

@available(iOS 27.0, macOS 27.0, *)
public final class CoreAIParts: TextEncoder, Denoiser {
    private let manifest: Manifest
    /// Part -> its asset and the function it runs: the denoiser variants are functions of one asset
    /// (a weight group, docs/shared_weights.md), a part alone runs `main`.
    private let assets: [String: (url: URL, function: String)]
    private let options: SpecializationOptions
    private let lock = NSLock()
    private var models: [URL: AIModel] = [:] // one loaded asset, whatever the number of its functions in use
    private var loaded: [String: InferenceFunction] = [:]
    public let variants: Set<String>
    /// Release each denoiser right after its call (least memory, slower); otherwise the variants stay
    /// loaded until `unloadAll()`, as in CoreMLParts.
    public var reduceMemory: Bool

    public init(_ manifest: Manifest, options: SpecializationOptions = .default, reduceMemory: Bool = false) throws {
        let paths = try manifest.partsFor("coreai")
        guard manifest.denoiserInputs == denoiserInputNames else {
            throw ManifestError("the denoiser takes \(manifest.denoiserInputs); this app feeds \(denoiserInputNames)")
        }
        guard paths["text_encoder"] != nil, paths["denoiser"] != nil else {
            throw ManifestError("the export needs text_encoder.aimodel and denoiser.aimodel; it has \(Set(paths.values.map { $0.path }).sorted())")
        }
        var assets: [String: (url: URL, function: String)] = [:]
        for (part, file) in paths { assets[part] = (try manifest.verified(file.path), file.function ?? "main") }
        self.manifest = manifest
        self.assets = assets
        self.options = options
        self.variants = Set(paths.keys.filter { $0.hasPrefix("denoiser") })
        self.reduceMemory = reduceMemory
    }

    /// Loads (specializes) every denoiser variant now, so the first clip's timings exclude it.
    public func preload() throws {
        for variant in variants.sorted() { _ = try function(variant) }
    }

    public func unloadAll() {
        lock.lock()
        defer { lock.unlock() }
        loaded.removeAll()
        models.removeAll()
    }

    /// Drops the part's function, and its asset once no loaded part runs a function of it.
    private func unload(_ part: String) {
        lock.lock()
        defer { lock.unlock() }
        loaded[part] = nil
        guard let url = assets[part]?.url else { return }
        if !loaded.keys.contains(where: { assets[$0]?.url == url }) { models[url] = nil }
    }

    /// The part's function, loading its asset on first use (once for the functions of one asset).
    private func function(_ part: String) throws -> InferenceFunction {
        lock.lock()
        defer { lock.unlock() }
        if let found = loaded[part] { return found }
        guard let (url, name) = assets[part] else { throw ManifestError("\(part) is not in this export; it has \(assets.keys.sorted())") }
        let options = self.options
        let model = try models[url] ?? blocking { try await AIModel(contentsOf: url, options: options) }
        models[url] = model
        guard let function = try model.loadFunction(named: name) else {
            throw ManifestError("\(url.lastPathComponent) has no function '\(name)'")
        }
        loaded[part] = function
        return function
    }

    public func encode(_ inputIds: [Int64], _ attentionMask: [Int64]) throws -> [Float] {
        defer { unload("text_encoder") } // used once per clip and the largest part
        let shape = [1, inputIds.count]
        return try predict(try function("text_encoder"), ["input_ids": (.ints(inputIds), shape),
                                                           "attention_mask": (.ints(attentionMask), shape)])
    }

    public func run(_ variant: String, _ x: [Float], _ t: Float, _ states: [Float], _ mask: [Float], _ guidance: Float) throws -> [Float] {
        defer { if reduceMemory { unload(variant) } }
        let inputs: [String: (Values, [Int])] = [
            "x": (.floats(x), manifest.shape),
            "t": (.floats([t]), [1]),
            "states": (.floats(states), [1, manifest.captionLen, manifest.captionDim]),
            "mask": (.floats(mask), [1, manifest.captionLen]),
            "guidance": (.floats([guidance]), [1]),
        ]
        return try predict(try function(variant), inputs)
    }
}

/// One call: every input as an NDArray of the type the function declares; its first output as float32.
@available(iOS 27.0, macOS 27.0, *)
private func predict(_ function: InferenceFunction, _ inputs: [String: (Values, [Int])]) throws -> [Float] {
    var feed: [String: NDArray] = [:]
    for (name, (values, shape)) in inputs {
        guard case .ndArray(let declared) = function.descriptor.inputDescriptor(of: name) else {
            throw ManifestError("the Core AI function has no array input \(name); it takes \(function.descriptor.inputNames)")
        }
        var array = NDArray(descriptor: declared.resolvingDynamicDimensions(shape))
        try fill(&array, values, name)
        feed[name] = array
    }
    guard let output = function.descriptor.outputNames.first else { throw ManifestError("the Core AI function has no output") }
    let ready = feed // a constant for the @Sendable closure
    var outputs = try blocking { try await function.run(inputs: ready) }
    guard let array = outputs.remove(output)?.ndArray else { throw ManifestError("the Core AI function returned no array \(output)") }
    return try floats(array)
}

@available(iOS 27.0, macOS 27.0, *)
private func fill(_ array: inout NDArray, _ values: Values, _ name: String) throws {
    switch (array.scalarType, values) {
    case (.float32, .floats(let v)):
        var view = array.mutableView(as: Float.self)
        view.copyElements(fromContentsOf: v)
    case (.int32, .ints(let v)):
        var view = array.mutableView(as: Int32.self)
        view.copyElements(fromContentsOf: v.map { Int32($0) }) // token ids and a 0/1 mask fit in 32 bits
    #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
    case (.float16, .floats(let v)):
        var view = array.mutableView(as: Float16.self)
        view.copyElements(fromContentsOf: v.map { Float16($0) })
    #endif
    default:
        throw ManifestError("input \(name): the asset declares \(array.scalarType), which this app does not fill")
    }
}

/// All values of an NDArray in C order as float32, whatever its strides (float32 or float16 outputs).
@available(iOS 27.0, macOS 27.0, *)
private func floats(_ array: NDArray) throws -> [Float] {
    var result: [Float] = []
    switch array.scalarType {
    case .float32:
        array.view(as: Float.self).withUnsafePointer { pointer, shape, strides in
            readStrided(pointer, shape, strides, into: &result) { $0 }
        }
    #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
    case .float16:
        array.view(as: Float16.self).withUnsafePointer { pointer, shape, strides in
            readStrided(pointer, shape, strides, into: &result) { Float($0) }
        }
    #endif
    default:
        throw ManifestError("the Core AI output is \(array.scalarType), not float32 or float16")
    }
    return result
}

/// Walks `shape` in C order, reading each element at its strided offset.
private func readStrided<T>(_ pointer: UnsafePointer<T>, _ shape: Span<Int>, _ strides: Span<Int>, into result: inout [Float],
                            _ convert: (T) -> Float) {
    var count = 1
    for axis in 0..<shape.count { count *= shape[axis] }
    result.reserveCapacity(count)
    var index = [Int](repeating: 0, count: shape.count)
    for _ in 0..<count {
        var offset = 0
        for axis in 0..<shape.count { offset += index[axis] * strides[axis] }
        result.append(convert(pointer[offset]))
        var axis = shape.count - 1
        while axis >= 0 {
            index[axis] += 1
            if index[axis] < shape[axis] { break }
            index[axis] = 0
            axis -= 1
        }
    }
}

/// Result of an async call, handed from the task that ran it to the thread waiting for it.
private final class Outcome<T>: @unchecked Sendable {
    var value: Result<T, Error>?
}

/// Runs an async Core AI call to completion for the synchronous TextEncoder / Denoiser protocols. The
/// pipeline runs off the main thread (the app's DemoModel and the CLI call it from a worker), and the call
/// runs in a detached task, so waiting here never blocks the work it waits for.
private func blocking<T>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
    let outcome = Outcome<T>()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do { outcome.value = .success(try await work()) } catch { outcome.value = .failure(error) }
        done.signal()
    }
    done.wait()
    return try outcome.value!.get()
}
#endif

// The Core ML glue: the export's .mlpackage parts behind TomobileCore's TextEncoder and Denoiser, with
// MLMultiArray I/O. Every package is checked against the manifest's sha256 before it is compiled.
#if canImport(CoreML)
import CoreML
import Foundation
import TomobileCore

/// The input order tomobile's denoiser graphs take (manifest io.denoiser_inputs).
private let denoiserInputNames = ["x", "t", "states", "mask", "guidance"]

public final class CoreMLParts: TextEncoder, Denoiser {
    private let manifest: Manifest
    private let models: [String: ManagedMLModel]
    public let variants: Set<String>
    /// Release each denoiser right after its call (least memory, slower), as On-device Sora does on phones
    /// with little free memory; otherwise the variants stay loaded until `unloadAll()`.
    public var reduceMemory: Bool

    public init(_ manifest: Manifest, cacheDirectory: URL, computeUnits: MLComputeUnits = .all, reduceMemory: Bool = false) throws {
        let paths = try manifest.partsFor("coreml")
        guard manifest.denoiserInputs == denoiserInputNames else {
            throw ManifestError("the denoiser takes \(manifest.denoiserInputs); this app feeds \(denoiserInputNames)")
        }
        guard paths["text_encoder"] != nil, paths["denoiser"] != nil else {
            throw ManifestError("the export needs text_encoder.mlpackage and denoiser.mlpackage; it has \(Set(paths.values.map { $0.path }).sorted())")
        }
        var models: [String: ManagedMLModel] = [:]
        for (part, file) in paths {
            // The denoiser variants are functions of one multifunction package (a weight group,
            // docs/shared_weights.md): compiled once (one cache entry per package sha256), each
            // variant loaded as its own function (MLModelConfiguration.functionName, iOS 18).
            let configuration = MLModelConfiguration()
            configuration.computeUnits = computeUnits
            if let function = file.function {
                guard #available(iOS 18.0, macOS 15.0, *) else {
                    throw ManifestError("\(file.path) holds several functions (shared weights); that needs iOS 18 or macOS 15")
                }
                configuration.functionName = function
            }
            let package = try manifest.verified(file.path)
            let sha = manifest.files[file.path] ?? part
            models[part] = ManagedMLModel(packageURL: package, compiledURL: cacheDirectory.appendingPathComponent("\(sha).mlmodelc"),
                                          configuration: configuration)
        }
        self.manifest = manifest
        self.models = models
        self.variants = Set(paths.keys.filter { $0.hasPrefix("denoiser") })
        self.reduceMemory = reduceMemory
    }

    private func model(_ part: String) throws -> ManagedMLModel {
        guard let model = models[part] else { throw ManifestError("\(part) is not in this export; it has \(models.keys.sorted())") }
        return model
    }

    /// Compiles (first launch) and loads every denoiser variant now, so the first clip's timings exclude it.
    public func preload() throws {
        for variant in variants.sorted() { try model(variant).loadResources() }
    }

    public func unloadAll() {
        for model in models.values { model.unloadResources() }
    }

    public func encode(_ inputIds: [Int64], _ attentionMask: [Int64]) throws -> [Float] {
        let encoder = try model("text_encoder")
        defer { encoder.unloadResources() } // used once per clip and the largest part
        let shape = [1, inputIds.count]
        return try encoder.perform { m in
            try predict(m, ["input_ids": (inputIds.map { Double($0) }, shape), "attention_mask": (attentionMask.map { Double($0) }, shape)])
        }
    }

    public func run(_ variant: String, _ x: [Float], _ t: Float, _ states: [Float], _ mask: [Float], _ guidance: Float) throws -> [Float] {
        let denoiser = try model(variant)
        defer { if reduceMemory { denoiser.unloadResources() } }
        let inputs: [String: ([Double], [Int])] = [
            "x": (x.map { Double($0) }, manifest.shape),
            "t": ([Double(t)], [1]),
            "states": (states.map { Double($0) }, [1, manifest.captionLen, manifest.captionDim]),
            "mask": (mask.map { Double($0) }, [1, manifest.captionLen]),
            "guidance": ([Double(guidance)], [1]),
        ]
        return try denoiser.perform { m in try predict(m, inputs) }
    }
}

/// One prediction: each input as the type the model declares (Core ML converts int64 inputs to int32),
/// values given as doubles (exact for float32 and int32); the model's single output as float32.
private func predict(_ model: MLModel, _ inputs: [String: ([Double], [Int])]) throws -> [Float] {
    var features: [String: MLFeatureValue] = [:]
    for (name, (values, shape)) in inputs {
        guard let constraint = model.modelDescription.inputDescriptionsByName[name]?.multiArrayConstraint else {
            throw ManifestError("the Core ML model has no multi-array input \(name)")
        }
        let array = try MLMultiArray(shape: shape.map { NSNumber(value: $0) }, dataType: constraint.dataType)
        for (i, value) in values.enumerated() { array[i] = NSNumber(value: value) }
        features[name] = MLFeatureValue(multiArray: array)
    }
    let output = try model.prediction(from: try MLDictionaryFeatureProvider(dictionary: features))
    guard let name = model.modelDescription.outputDescriptionsByName.keys.first,
          let array = output.featureValue(for: name)?.multiArrayValue else {
        throw ManifestError("the Core ML model returned no multi-array output")
    }
    return floats(array)
}

/// All values of a multi-array in C order as float32, whatever its element type and strides.
private func floats(_ array: MLMultiArray) -> [Float] {
    let shape = array.shape.map { $0.intValue }
    let strides = array.strides.map { $0.intValue }
    var contiguous = true
    var expected = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) {
        if shape[axis] > 1 && strides[axis] != expected { contiguous = false }
        expected *= shape[axis]
    }
    if contiguous && array.dataType == .float32 {
        let pointer = array.dataPointer.bindMemory(to: Float.self, capacity: array.count)
        return Array(UnsafeBufferPointer(start: pointer, count: array.count))
    }
    return (0..<array.count).map { i in
        var rest = i
        var key: [NSNumber] = Array(repeating: 0, count: shape.count)
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            key[axis] = NSNumber(value: rest % shape[axis])
            rest /= shape[axis]
        }
        return array[key].floatValue
    }
}
#endif

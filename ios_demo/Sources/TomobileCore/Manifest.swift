// The export folder's manifest.json: which files the app loads, their sha256, the model's shapes and the
// sampler's defaults. Every file is checked before use, and a missing or altered one is refused with an
// error that names it. Mirrors android_demo :core Manifest.kt (SHA-256 itself is in SHA256.swift).
import Foundation

public struct ManifestError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One part's artifact in one format. Parts that share their weights (a weight group: the denoiser
/// variants, docs/shared_weights.md) share one file: an ExecuTorch program with a `method` per part,
/// a multifunction Core ML package with a `function` per part, or ONNX graphs that read one `weights`
/// file (external data). Nil where the part has the file to itself. Mirrors Manifest.kt's PartFile.
public struct PartFile: Equatable, Hashable {
    public let path: String
    public let method: String?
    public let function: String?
    public let weights: String?

    public init(_ path: String, method: String? = nil, function: String? = nil, weights: String? = nil) {
        self.path = path
        self.method = method
        self.function = function
        self.weights = weights
    }

    /// The method to load and run: the part's own in a shared program, else "forward".
    public var methodName: String { method ?? "forward" }
}

/// What the app reads from manifest.json. `files`: every listed file or .mlpackage (relative path -> sha256).
public struct Manifest {
    public let folder: URL
    public let model: String
    public let shape: [Int] // (1, C, T, H, W)
    public let captionLen: Int
    public let captionDim: Int // width of the text encoder's states (1, captionLen, captionDim)
    public let denoiserInputs: [String] // the order the denoiser graphs take their inputs in
    public let defaults: SamplerConfig
    public let files: [String: String]
    /// Model parts by format: format ("onnx", "executorch", "coreml") -> part name -> its artifact.
    public let parts: [String: [String: PartFile]]

    /// The part files of one format, or an error listing the formats this export has.
    public func partsFor(_ format: String) throws -> [String: PartFile] {
        guard let found = parts[format] else {
            throw ManifestError("this export has no \(format) files; it has: \(parts.keys.sorted().joined(separator: ", ")); export with --format \(format)")
        }
        return found
    }
}

private let manifestName = "manifest.json"

/// Reads `folder`/manifest.json, written by `tomobile export video-dit-tiny`.
public func readManifest(_ folder: URL) throws -> Manifest {
    let file = folder.appendingPathComponent(manifestName)
    guard let data = FileManager.default.contents(atPath: file.path) else {
        throw ManifestError("\(manifestName) not found in \(folder.path); copy the whole folder written by `tomobile export video-dit-tiny --out DIR`")
    }
    let root: [String: JsonValue]
    do {
        root = try Json.parse(String(decoding: data, as: UTF8.self)).asObject(manifestName)
    } catch let error as JsonError {
        throw ManifestError("\(manifestName) in \(folder.path) is not valid: \(error)")
    }
    do {
        let mc = try root.field("model_config", manifestName).asObject("model_config")
        let size = try mc.field("size", "model_config").asInt("model_config.size")
        let channels = try mc.field("channels", "model_config").asInt("channels")
        let frames = try mc.field("frames", "model_config").asInt("frames")
        let shape = [1, channels, frames, size, size]
        var files: [String: String] = [:]
        var parts: [String: [String: PartFile]] = [:]
        for (i, a) in try root.field("artifacts", manifestName).asList("artifacts").enumerated() {
            let art = try a.asObject("artifacts[\(i)]")
            let path = try art.field("path", "artifacts[\(i)]").asString("artifacts[\(i)].path")
            files[path] = try art.field("sha256", "artifacts[\(i)]").asString("artifacts[\(i)].sha256")
            if art["companion_of"] != nil { continue } // an int8 copy for the browser; the apps run the fp32 file
            var weightsPath: String? = nil
            if let weights = art["weights"] {
                let record = try weights.asObject("artifacts[\(i)].weights")
                let wp = try record.field("path", "artifacts[\(i)].weights").asString("artifacts[\(i)].weights.path")
                files[wp] = try record.field("sha256", "artifacts[\(i)].weights").asString("artifacts[\(i)].weights.sha256")
                weightsPath = wp
            }
            let format = try art.field("format", "artifacts[\(i)]").asString("artifacts[\(i)].format")
            let part = try art.field("part", "artifacts[\(i)]").asString("part")
            parts[format, default: [:]][part] = PartFile(path, method: try art["method"]?.asString("artifacts[\(i)].method"),
                                                         function: try art["function"]?.asString("artifacts[\(i)].function"),
                                                         weights: weightsPath)
        }
        for (path, sha) in try root.field("files", manifestName).asObject("files") { files[path] = try sha.asString("files.\(path)") }
        let inputs = try root.field("io", manifestName).asObject("io").field("denoiser_inputs", "io").asList("io.denoiser_inputs")
        let model = try root.field("model", manifestName).asString("model")
        let captionLen = try mc.field("caption_len", "model_config").asInt("caption_len")
        let captionDim = try mc.field("caption_dim", "model_config").asInt("caption_dim")
        let denoiserInputs = try inputs.map { try $0.asString("io.denoiser_inputs") }
        let defaults = try samplerDefaults(root)
        return Manifest(folder: folder, model: model, shape: shape, captionLen: captionLen, captionDim: captionDim,
                        denoiserInputs: denoiserInputs, defaults: defaults, files: files, parts: parts)
    } catch let error as JsonError {
        throw ManifestError("\(manifestName) in \(folder.path): \(error)")
    }
}

/// The sampler settings the export was validated with (steps, guidance, shift, LPL, TDTM, timesteps).
private func samplerDefaults(_ root: [String: JsonValue]) throws -> SamplerConfig {
    let s = try root.field("sampler", manifestName).asObject("sampler")
    var similarityText = "original"
    if case .string(let text)? = s["lpl_similarity"] { similarityText = text }
    let similarity = try SimilarityMode.parse(similarityText)
    var leap = LeapConfig(similarity: similarity)
    if case .int(let step)? = s["lpl_step"] { leap = LeapConfig(mode: .fixed, step: Int(step), similarity: similarity) }
    var tdtm = 0
    if case .int(let n)? = s["tdtm_steps"] { tdtm = Int(n) }
    var timestepText = "discrete"
    if case .string(let text)? = s["timesteps"] { timestepText = text }
    let steps = try s.field("steps", "sampler").asInt("sampler.steps")
    let guidance = Float(try s.field("guidance", "sampler").asDouble("sampler.guidance"))
    let shift = try s.field("shift", "sampler").asDouble("sampler.shift")
    let timesteps = try TimestepMode.parse(timestepText)
    return try SamplerConfig(steps: steps, guidance: guidance, shift: shift, leap: leap, tdtmSteps: tdtm, timesteps: timesteps)
}

public func sha256Hex(_ bytes: [UInt8]) -> String {
    var h = SHA256()
    h.update(bytes)
    return hex(h.finalize())
}

/// sha256 of a file, read in 1 MiB chunks, or of a folder (a Core ML .mlpackage) as the manifest hashes
/// it (export/pipeline.py sha256_path): for each file, sorted by path components, its relative path
/// ("/"-separated, UTF-8) and then its contents.
public func sha256Path(_ path: URL) throws -> String {
    var h = SHA256()
    var isDir: ObjCBool = false
    _ = FileManager.default.fileExists(atPath: path.path, isDirectory: &isDir)
    if isDir.boolValue {
        let all = try FileManager.default.subpathsOfDirectory(atPath: path.path)
        let files = all.filter { rel in
            var dir: ObjCBool = false
            return FileManager.default.fileExists(atPath: path.appendingPathComponent(rel).path, isDirectory: &dir) && !dir.boolValue
        }
        for rel in files.sorted(by: { comparePathParts($0, $1) < 0 }) {
            h.update(Array(rel.utf8))
            try updateWithFile(&h, path.appendingPathComponent(rel))
        }
    } else {
        try updateWithFile(&h, path)
    }
    return hex(h.finalize())
}

/// Python's order of paths: component by component ("a/b" before "a-b/c"), not as plain strings.
private func comparePathParts(_ a: String, _ b: String) -> Int {
    let pa = a.split(separator: "/", omittingEmptySubsequences: false).map { Array(String($0).unicodeScalars.map { $0.value }) }
    let pb = b.split(separator: "/", omittingEmptySubsequences: false).map { Array(String($0).unicodeScalars.map { $0.value }) }
    for i in 0..<min(pa.count, pb.count) where pa[i] != pb[i] {
        return pa[i].lexicographicallyPrecedes(pb[i]) ? -1 : 1
    }
    return pa.count - pb.count
}

private func updateWithFile(_ h: inout SHA256, _ file: URL) throws {
    let handle = try FileHandle(forReadingFrom: file)
    defer { handle.closeFile() }
    while true {
        let chunk = handle.readData(ofLength: 1 << 20)
        if chunk.isEmpty { break }
        h.update([UInt8](chunk))
    }
}

private func hex(_ digest: [UInt8]) -> String {
    digest.map { String(format: "%02x", $0) }.joined()
}

/// `folder`/`relPath` (a file or an .mlpackage folder) after checking its sha256; a missing or altered one is an error naming it.
public func verifyFile(_ folder: URL, _ relPath: String, _ expectedSha256: String) throws -> URL {
    let file = folder.appendingPathComponent(relPath)
    guard FileManager.default.fileExists(atPath: file.path) else {
        throw ManifestError("\(relPath) is missing from \(folder.path) (the manifest lists it); copy the whole export folder")
    }
    let actual = try sha256Path(file)
    guard actual == expectedSha256.lowercased() else {
        throw ManifestError("\(relPath) was altered: its sha256 is \(actual), the manifest says \(expectedSha256); export it again")
    }
    return file
}

extension Manifest {
    /// Checks one file the manifest lists (an unlisted file is refused too: nothing unchecked is loaded).
    public func verified(_ relPath: String) throws -> URL {
        guard let sha = files[relPath] else {
            throw ManifestError("\(relPath) is not listed in \(manifestName); listed: \(files.keys.sorted().joined(separator: ", "))")
        }
        return try verifyFile(folder, relPath, sha)
    }
}

/// The contract's digest: lowercase hex sha256 of the float32 little-endian bytes in C order.
public func digestFloat32(_ array: [Float]) -> String {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(array.count * 4)
    for value in array {
        let bits = value.bitPattern // shifts take bytes from the low end: little-endian on any host
        bytes.append(contentsOf: [UInt8(truncatingIfNeeded: bits), UInt8(truncatingIfNeeded: bits >> 8),
                                  UInt8(truncatingIfNeeded: bits >> 16), UInt8(truncatingIfNeeded: bits >> 24)])
    }
    return sha256Hex(bytes)
}

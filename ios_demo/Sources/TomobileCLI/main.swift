// tomobile-swift: the Swift port from the command line, like ml-stable-diffusion's StableDiffusionCLI.
//   tomobile-swift check EXPORT_DIR       sha256 of every file the manifest lists (any OS)
//   tomobile-swift generate EXPORT_DIR [--prompt P] [--seed S] [--steps N] [--lpl off|N|auto]
//                  [--tdtm-steps N] [--spatial] [--out DIR]
//       a clip on Core ML (macOS; the export needs --format coreml), written as frame_NN.ppm files.
// Bad input: one line on stderr starting "tomobile-swift: error:", exit code 2.
import Foundation
import TomobileCore
#if canImport(CoreML)
import CoreML
import TomobileCoreML
#endif

let usage = "usage: tomobile-swift check EXPORT_DIR | generate EXPORT_DIR [--prompt P] [--seed S] [--steps N] [--lpl off|N|auto] [--tdtm-steps N] [--spatial] [--out DIR]"

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("tomobile-swift: error: \(message)\n".utf8))
    exit(2)
}

/// --name value pairs and --flags after the export folder.
func options(_ args: ArraySlice<String>) -> [String: String] {
    var out: [String: String] = [:]
    var rest = args
    while let name = rest.popFirst() {
        guard name.hasPrefix("--") else { fail("unexpected argument \(name); \(usage)") }
        if name == "--spatial" {
            out[name] = "on"
        } else if let value = rest.popFirst() {
            out[name] = value
        } else {
            fail("\(name) needs a value; \(usage)")
        }
    }
    let known: Set<String> = ["--prompt", "--seed", "--steps", "--lpl", "--tdtm-steps", "--spatial", "--out"]
    if let unknown = out.keys.first(where: { !known.contains($0) }) { fail("unknown option \(unknown); allowed: \(known.sorted().joined(separator: ", "))") }
    return out
}

func check(_ folder: URL) throws {
    let manifest = try readManifest(folder)
    for path in manifest.files.keys.sorted() {
        _ = try manifest.verified(path)
        print("ok  \(path)")
    }
    print("\(manifest.files.count) files match manifest.json")
}

/// Frames (T, H, W, 3) in [0, 1] as binary PPM files, one per frame.
func writeFrames(_ frames: [Float], _ shape: [Int], _ out: URL) throws {
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    let (height, width) = (shape[3], shape[4])
    for t in 0..<shape[2] {
        var bytes = Array("P6\n\(width) \(height)\n255\n".utf8)
        for pixel in frameArgb(frames, shape, t) {
            bytes += [UInt8((pixel >> 16) & 0xFF), UInt8((pixel >> 8) & 0xFF), UInt8(pixel & 0xFF)]
        }
        try Data(bytes).write(to: out.appendingPathComponent(String(format: "frame_%02d.ppm", t)))
    }
}

func generate(_ folder: URL, _ opts: [String: String]) throws {
    #if canImport(CoreML)
    let manifest = try readManifest(folder)
    let tokenizer = try WordPieceTokenizer.fromTokenizerJson(String(decoding: try Data(contentsOf: try manifest.verified("tokenizer.json")), as: UTF8.self))
    let cache = FileManager.default.temporaryDirectory.appendingPathComponent("tomobile-coreml-cache")
    let parts = try CoreMLParts(manifest, cacheDirectory: cache)
    try parts.preload()
    var settings = ScreenSettings()
    settings.prompt = opts["--prompt"] ?? settings.prompt
    settings.seed = opts["--seed"] ?? settings.seed
    settings.steps = opts["--steps"] ?? String(manifest.defaults.steps)
    settings.lpl = opts["--lpl"] ?? settings.lpl
    settings.tdtmSteps = opts["--tdtm-steps"] ?? String(manifest.defaults.tdtmSteps)
    settings.spatial = opts["--spatial"] != nil
    let cfg = try settings.toConfig(manifest.defaults)
    let pipeline = Pipeline(tokenizer, parts, parts, manifest.shape, manifest.captionLen)
    let gen = try pipeline.generate(settings.prompt, try settings.seedValue(), cfg)
    let out = URL(fileURLWithPath: opts["--out"] ?? "tomobile-swift-out")
    try writeFrames(gen.frames, manifest.shape, out)
    let perCall = gen.stats.callMillis.reduce(0, +) / Double(max(1, gen.stats.callMillis.count))
    print("\(gen.stats.calls) denoiser calls (\(gen.stats.mergedCalls) TDTM-merged), leap at \(gen.stats.leapAt.map(String.init) ?? "none")")
    print(String(format: "%.1f ms per call, sampling %.0f ms, text encoder %.0f ms", perCall, gen.stats.sampleMillis, gen.stats.encodeMillis))
    print("wrote \(manifest.shape[2]) frames to \(out.path)")
    #else
    fail("generate needs Core ML (macOS or iOS); here only `check` runs")
    #endif
}

let args = CommandLine.arguments.dropFirst()
guard let command = args.first, args.count >= 2 else { fail(usage) }
let folder = URL(fileURLWithPath: args[args.startIndex + 1])
do {
    switch command {
    case "check":
        if args.count > 2 { fail("check takes only EXPORT_DIR; \(usage)") }
        try check(folder)
    case "generate":
        try generate(folder, options(args.dropFirst(2)))
    default:
        fail("unknown command \(command); allowed: check, generate")
    }
} catch {
    fail("\(error)")
}

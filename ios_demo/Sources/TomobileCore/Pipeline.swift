// Text -> video with any runtime behind two small protocols: the app implements them with Core ML
// (TomobileCoreML/CoreMLParts.swift), the tests with recorded outputs. Mirrors android_demo :core
// Pipeline.kt and web_demo/core/pipeline.js.
import Foundation

/// The exported text encoder: ids and mask (1, L) -> states (1, L, D) float32, flattened.
public protocol TextEncoder: AnyObject {
    func encode(_ inputIds: [Int64], _ attentionMask: [Int64]) throws -> [Float]
}

/// One exported denoiser per variant ("denoiser", "denoiser_tdtm", "denoiser_tome", "denoiser_tdtm_tome"),
/// inputs as in the manifest: x (1, C, T, H, W), t (1), states (1, L, D), mask (1, L) float32, guidance (1);
/// output: the guided velocity, shaped as x. Classifier-free guidance runs inside the graph.
public protocol Denoiser: AnyObject {
    var variants: Set<String> { get }

    func run(_ variant: String, _ x: [Float], _ t: Float, _ states: [Float], _ mask: [Float], _ guidance: Float) throws -> [Float]
}

/// What the screen shows besides the clip.
public struct GenerationStats {
    public let calls: Int
    public let mergedCalls: Int
    public let leapAt: Int?
    public let variants: [String]
    public let callMillis: [Double]
    public let encodeMillis: Double
    public let sampleMillis: Double
}

/// frames: (T, H, W, 3) float32 in [0, 1], C order.
public struct Generation {
    public let frames: [Float]
    public let result: SampleResult
    public let stats: GenerationStats
}

public final class Pipeline {
    private let tokenizer: WordPieceTokenizer
    private let textEncoder: TextEncoder
    private let denoiser: Denoiser
    public let shape: [Int]
    public let captionLen: Int

    public init(_ tokenizer: WordPieceTokenizer, _ textEncoder: TextEncoder, _ denoiser: Denoiser, _ shape: [Int], _ captionLen: Int) {
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.denoiser = denoiser
        self.shape = shape
        self.captionLen = captionLen
    }

    /// One clip for `prompt` and `seed` (the same noise as `tomobile generate --seed`).
    public func generate(_ prompt: String, _ seed: UInt64, _ cfg: SamplerConfig, _ onStep: ((StepInfo) -> Void)? = nil) throws -> Generation {
        let startEncode = DispatchTime.now().uptimeNanoseconds
        let enc = try tokenizer.encode(prompt, captionLen)
        let states = try textEncoder.encode(enc.inputIds, enc.attentionMask)
        let mask = enc.attentionMask.map { Float($0) }
        let encodeMillis = Double(DispatchTime.now().uptimeNanoseconds - startEncode) / 1e6
        var callMillis: [Double] = []
        let denoiser = self.denoiser
        let velocity = VelocityFn { variant, x, t in
            guard denoiser.variants.contains(variant) else {
                throw InvalidArgument("variant \(variant) is not in the export; it has: \(denoiser.variants.sorted().joined(separator: ", "))")
            }
            let start = DispatchTime.now().uptimeNanoseconds
            let v = try denoiser.run(variant, x, t, states, mask, cfg.guidance)
            callMillis.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            return v
        }
        let noise = latentNoise(shape, seed) // outside the timed region, as in Python
        let startSample = DispatchTime.now().uptimeNanoseconds
        let result = try sample(velocity, noise, shape, cfg, onStep)
        let sampleMillis = Double(DispatchTime.now().uptimeNanoseconds - startSample) / 1e6
        let stats = GenerationStats(calls: result.calls, mergedCalls: result.mergedCalls, leapAt: result.leapAt, variants: result.variants,
                                    callMillis: callMillis, encodeMillis: encodeMillis, sampleMillis: sampleMillis)
        return Generation(frames: try framesFromLatent(result.x, shape), result: result, stats: stats)
    }
}

/// What the screen lets a person set, as typed; `toConfig` checks it and fills in the export's defaults.
public struct ScreenSettings: Equatable {
    public var prompt = "a red circle moving left"
    public var seed = "0"
    public var steps = "30"
    public var lpl = "15" // off | N | auto
    public var tdtmSteps = "15"
    public var spatial = false

    public init() {}

    public func seedValue() throws -> UInt64 { try parseSeed(seed) }

    /// Guidance, shift, timesteps and LPL similarity stay as the export was validated with.
    public func toConfig(_ defaults: SamplerConfig) throws -> SamplerConfig {
        guard let n = Int(steps.trimmingCharacters(in: .whitespaces)) else { throw InvalidArgument("steps must be a whole number, got \"\(steps)\"") }
        guard let tdtm = Int(tdtmSteps.trimmingCharacters(in: .whitespaces)) else {
            throw InvalidArgument("TDTM steps must be a whole number, got \"\(tdtmSteps)\"")
        }
        let leap = try LeapConfig.parse(lpl, defaults.leap.similarity)
        return try SamplerConfig(steps: n, guidance: defaults.guidance, shift: defaults.shift, leap: leap, tdtmSteps: tdtm,
                                 timesteps: defaults.timesteps, spatial: spatial)
    }
}

/// Frame `index` of frames (T, H, W, 3) in [0, 1] as ARGB pixels, each channel round(f * 255).
public func frameArgb(_ frames: [Float], _ shape: [Int], _ index: Int) -> [UInt32] {
    let pixels = shape[3] * shape[4]
    let start = index * pixels * 3
    return (0..<pixels).map { p in
        func channel(_ c: Int) -> UInt32 {
            let scaled = frames[start + p * 3 + c] * 255.0 + 0.5
            return UInt32(min(max(Int(scaled), 0), 255))
        }
        return (0xFF << 24) | (channel(0) << 16) | (channel(1) << 8) | channel(2)
    }
}

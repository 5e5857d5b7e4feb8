// Rectified-flow Euler sampler (Open-Sora) with On-device Sora's step leap (LPL) and TDTM schedule,
// ported from runtime/sampler.py so that, fed the same velocities, it computes the same float32 bits
// (docs/contract.md, "The sampler"). Mirrors android_demo :core Sampler.kt and web_demo/core/sampler.js.
//
// Times and similarities in float64 (sums in index order), the latent in float32: dt = f32(t_i - t_{i+1});
// x = f32(x - f32(v * dt)); at a leap x = f32(x - f32(v * f32(t_i))); the denoiser gets f32(t_i).
// The product and the difference are separate statements: Swift does not fuse them into an FMA.
// Classifier-free guidance runs inside the exported denoiser: `guidance` goes through the Denoiser.
import Foundation

/// On-device Sora's RFLOW scheduler: a dynamic leap is allowed from step 14 of 30.
public let autoMinSteps = 14
public let autoReferenceSteps = 30
/// Open-Sora's RFLOW trains and samples on 1000 integer timesteps.
public let numTimesteps = 1000
/// torch's cosine_similarity eps: each norm is clamped to at least this.
public let cosineEps = 1e-8

public enum TimestepMode: String, CaseIterable {
    case discrete
    case continuous

    public static func parse(_ text: String) throws -> TimestepMode { try parseMode(text, "timesteps") }
}

public enum LeapMode { case off, fixed, auto }

public enum SimilarityMode: String, CaseIterable {
    case original // On-device Sora: row cosines of v[0, 0, 0], averaged
    case full // one cosine over the whole velocity

    public static func parse(_ text: String) throws -> SimilarityMode { try parseMode(text, "lpl_similarity") }
}

private func parseMode<T: RawRepresentable & CaseIterable>(_ text: String, _ option: String) throws -> T where T.RawValue == String {
    guard let mode = T(rawValue: text) else {
        throw InvalidArgument("bad \(option) value \"\(text)\"; allowed: \(T.allCases.map { $0.rawValue }.joined(separator: ", "))")
    }
    return mode
}

/// LPL settings: off, a fixed leap after `step` normal steps, or auto (On-device Sora's rule and defaults).
public struct LeapConfig: Equatable {
    public var mode: LeapMode = .off
    public var step: Int = 15
    public var minSteps: Int?
    public var tolerance: Double = 1e-3
    public var patience: Int = 3
    public var similarity: SimilarityMode = .original

    public init(mode: LeapMode = .off, step: Int = 15, minSteps: Int? = nil, tolerance: Double = 1e-3, patience: Int = 3,
                similarity: SimilarityMode = .original) {
        self.mode = mode
        self.step = step
        self.minSteps = minSteps
        self.tolerance = tolerance
        self.patience = patience
        self.similarity = similarity
    }

    /// "off" | "auto" | N (fixed leap after N steps, N >= 1), as `tomobile generate --lpl`.
    public static func parse(_ text: String, _ similarity: SimilarityMode = .original) throws -> LeapConfig {
        let value = text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        if value == "off" { return LeapConfig(similarity: similarity) }
        if value == "auto" { return LeapConfig(mode: .auto, similarity: similarity) }
        if !value.isEmpty, value.allSatisfy({ ("0"..."9").contains($0) }), let n = Int(value), n >= 1 {
            return LeapConfig(mode: .fixed, step: n, similarity: similarity)
        }
        throw InvalidArgument("bad lpl value \"\(text)\"; allowed: off, auto, or a step count N >= 1")
    }
}

/// Everything the loop needs. `spatial` picks the spatial-ToMe denoiser variants for every call.
public struct SamplerConfig: Equatable {
    public let steps: Int
    public let guidance: Float
    public let shift: Double
    public let leap: LeapConfig
    public let tdtmSteps: Int
    public let timesteps: TimestepMode
    public let spatial: Bool

    public init(steps: Int = 30, guidance: Float = 4.0, shift: Double = 2.0, leap: LeapConfig = LeapConfig(), tdtmSteps: Int = 0,
                timesteps: TimestepMode = .discrete, spatial: Bool = false) throws {
        guard steps >= 1 else { throw InvalidArgument("steps must be >= 1, got \(steps)") }
        guard timesteps != .discrete || steps <= numTimesteps else {
            throw InvalidArgument("discrete timesteps allow at most \(numTimesteps) steps, got \(steps)")
        }
        guard (0...steps).contains(tdtmSteps) else { throw InvalidArgument("TDTM steps must be 0..\(steps) for \(steps) steps, got \(tdtmSteps)") }
        guard guidance.isFinite && shift.isFinite else { throw InvalidArgument("guidance and shift must be finite numbers, got \(guidance) and \(shift)") }
        guard leap.mode != .fixed || (1...max(1, steps - 2)).contains(leap.step) && steps >= 3 else {
            throw InvalidArgument("a leap after N steps needs 1 <= N <= \(steps - 2) for \(steps) steps; got \(leap.step) (at N = \(steps - 1) the last step is a plain step: no leap)")
        }
        self.steps = steps
        self.guidance = guidance
        self.shift = shift
        self.leap = leap
        self.tdtmSteps = tdtmSteps
        self.timesteps = timesteps
        self.spatial = spatial
    }
}

/// Open-Sora's timestep transform t -> ratio t / (1 + (ratio - 1) t).
public func shiftTime(_ t: Double, _ ratio: Double) -> Double {
    ratio * t / (1.0 + (ratio - 1.0) * t)
}

/// steps + 1 times from 1 down to 0: shift(u_i) for i = 0..steps-1, then 0. continuous: u_i = 1 - i / steps;
/// discrete (Open-Sora): u_i = round_half_even((1 - i / steps) * 1000) / 1000.
public func timesteps(_ steps: Int, _ shift: Double, _ mode: TimestepMode = .discrete) throws -> [Double] {
    guard mode != .discrete || steps <= numTimesteps else {
        throw InvalidArgument("discrete timesteps allow at most \(numTimesteps) steps, got \(steps); use continuous timesteps")
    }
    var times = [Double](repeating: 0.0, count: steps + 1) // the last stays 0.0
    for i in 0..<steps {
        var u = 1.0 - Double(i) / Double(steps)
        if mode == .discrete { u = (u * Double(numTimesteps)).rounded(.toNearestOrEven) / Double(numTimesteps) }
        times[i] = shiftTime(u, shift)
    }
    return times
}

/// On-device Sora's minimum before a dynamic leap: step 14 of 30, in proportion for other counts.
public func defaultMinSteps(_ steps: Int) -> Int {
    max(1, Int((Double(steps * autoMinSteps) / Double(autoReferenceSteps)).rounded(.toNearestOrEven)))
}

/// Cosine of each row (length `width`) of a and b from `offset`, float64, sums in index order.
public func cosineRows(_ a: [Float], _ b: [Float], _ offset: Int, _ rows: Int, _ width: Int) -> [Double] {
    (0..<rows).map { r in
        var ab = 0.0
        var aa = 0.0
        var bb = 0.0
        for j in (offset + r * width)..<(offset + (r + 1) * width) {
            let x = Double(a[j])
            let y = Double(b[j])
            ab += x * y
            aa += x * x
            bb += y * y
        }
        return ab / (max(aa.squareRoot(), cosineEps) * max(bb.squareRoot(), cosineEps))
    }
}

/// LPL's similarity of consecutive velocities of `shape` (B, C, T, H, W). original: the row cosines of the
/// plane [0, 0, 0] (H rows of W, its first H * W elements), averaged in row order; full: one cosine over all.
public func velocitySimilarity(_ prev: [Float], _ cur: [Float], _ shape: [Int], _ mode: SimilarityMode) throws -> Double {
    if mode == .full { return cosineRows(prev, cur, 0, 1, cur.count)[0] }
    guard shape.count == 5 else { throw InvalidArgument("the original LPL similarity needs velocities (B, C, T, H, W), got shape \(shape)") }
    let rows = cosineRows(prev, cur, 0, shape[3], shape[4])
    var sum = 0.0
    for r in rows { sum += r }
    return sum / Double(rows.count)
}

/// On-device Sora's dynamic leap rule: from `minSteps` on, a similarity more than `tolerance` above the best
/// so far (which starts at 0) becomes the best and refills the patience; anything else spends one unit;
/// with patience spent, leap with the velocity just evaluated.
public final class AutoLeap {
    private let cfg: LeapConfig
    public let minSteps: Int
    public private(set) var similarities: [Double] = [] // one per step from step 1 on
    private var prev: [Float]?
    private var best = 0.0
    private var left: Int

    public init(_ cfg: LeapConfig, _ steps: Int) {
        self.cfg = cfg
        minSteps = cfg.minSteps ?? defaultMinSteps(steps)
        left = cfg.patience
    }

    public func shouldLeap(_ step: Int, _ v: [Float], _ shape: [Int]) throws -> Bool {
        let last = prev
        prev = v
        guard let last else { return false }
        return observe(step, try velocitySimilarity(last, v, shape, cfg.similarity))
    }

    /// The rule on its own: record step's similarity (to the previous velocity) and say whether to leap.
    public func observe(_ step: Int, _ similarity: Double) -> Bool {
        similarities.append(similarity)
        if step < minSteps { return false }
        if similarity > best + cfg.tolerance {
            best = similarity
            left = cfg.patience
            return false
        }
        left -= 1
        return left <= 0
    }
}

/// The denoiser variant for a call: "denoiser" + "_tdtm" when merged + "_tome" with spatial ToMe.
public func variantName(_ merged: Bool, _ spatial: Bool) -> String {
    "denoiser" + (merged ? "_tdtm" : "") + (spatial ? "_tome" : "")
}

/// One denoiser call as the sampler sees it: which step, at what time, with which variant.
public struct StepInfo {
    public let step: Int
    public let t: Float
    public let variant: String
    public let stepsDone: Int
}

public struct SampleResult {
    public let x: [Float]
    public let calls: Int
    public let mergedCalls: Int
    public let leapAt: Int?
    public let similarities: [Double]
    public let variants: [String]
}

/// Velocity for latent x at time t with the named variant; guidance and text states are the caller's.
public struct VelocityFn {
    private let body: (String, [Float], Float) throws -> [Float]

    public init(_ body: @escaping (String, [Float], Float) throws -> [Float]) { self.body = body }

    public func velocity(_ variant: String, _ x: [Float], _ t: Float) throws -> [Float] { try body(variant, x, t) }
}

/// Euler sampling from `noise` (t = 1) to t = 0. Step i runs merged (TDTM) when i < tdtmSteps.
public func sample(_ velocity: VelocityFn, _ noise: [Float], _ shape: [Int], _ cfg: SamplerConfig,
                   _ onStep: ((StepInfo) -> Void)? = nil) throws -> SampleResult {
    let ts = try timesteps(cfg.steps, cfg.shift, cfg.timesteps)
    var x = noise
    let auto = cfg.leap.mode == .auto ? AutoLeap(cfg.leap, cfg.steps) : nil
    var variants: [String] = []
    var mergedCalls = 0
    var leapAt: Int?
    for i in 0..<cfg.steps {
        let merged = i < cfg.tdtmSteps
        let variant = variantName(merged, cfg.spatial)
        let v = try velocity.velocity(variant, x, Float(ts[i]))
        guard v.count == x.count else { throw InvalidArgument("\(variant) returned \(v.count) values, expected \(x.count)") }
        variants.append(variant)
        if merged { mergedCalls += 1 }
        var leap = cfg.leap.mode == .fixed && i == cfg.leap.step
        if let auto, try auto.shouldLeap(i, v, shape) { leap = true }
        let last = leap && i < cfg.steps - 1
        let dt = last ? Float(ts[i]) : Float(ts[i] - ts[i + 1]) // a leap covers all remaining time
        x = (0..<x.count).map { j in
            let step = v[j] * dt
            return x[j] - step
        }
        onStep?(StepInfo(step: i, t: Float(ts[i]), variant: variant, stepsDone: last ? cfg.steps : i + 1))
        if last {
            leapAt = i
            break
        }
    }
    return SampleResult(x: x, calls: variants.count, mergedCalls: mergedCalls, leapAt: leapAt,
                        similarities: auto?.similarities ?? [], variants: variants)
}

/// Latent (1, 3, T, H, W) -> frames (T, H, W, 3), each clip(f32(f32(x + 1) / 2), 0, 1).
public func framesFromLatent(_ x: [Float], _ shape: [Int]) throws -> [Float] {
    guard shape.count == 5, shape[0] == 1, shape[1] == 3 else { throw InvalidArgument("frames need a latent (1, 3, T, H, W), got \(shape)") }
    let plane = shape[2] * shape[3] * shape[4]
    return (0..<(plane * 3)).map { k in
        let c = k % 3
        let pixel = k / 3 // (frame, row, column) in C order
        let value = (x[c * plane + pixel] + 1.0) / 2.0
        return min(max(value, 0.0), 1.0)
    }
}

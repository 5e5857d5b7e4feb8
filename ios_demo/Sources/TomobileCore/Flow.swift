// Diffusers' flow-matching sampling for a WanPipeline export, bit for bit as runtime/flow_schedule.py and
// runtime/flow_sampler.py (docs/contract.md, "The Wan pipeline"): the schedules of
// FlowMatchEulerDiscreteScheduler and UniPCMultistepScheduler (flow prediction), their steps, WanPipeline's
// classifier-free guidance, LPL and TDTM steps, the VAE's latent un-scaling and WanPipeline's prompt cleaning.
// Mirrors android_demo :core Flow.kt and web_demo/core/flow.js, function by function.
//
// Schedules in float64 with float32 roundings where diffusers rounds; every latent operation in Float.
import Foundation

public let eulerScheduler = "FlowMatchEulerDiscreteScheduler"
public let unipcScheduler = "UniPCMultistepScheduler"
private let unsupportedOptions = ["use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "invert_sigmas",
                                  "stochastic_sampling", "thresholding", "solver_p", "use_dynamic_shifting"]
private let ln2Hi = 6.93147180369123816490e-01
private let ln2Lo = 1.90821492927058770002e-10
private let expm1Terms = 20

/// What the sampler needs from a scheduler config for `timesteps.count` steps (sigmas: one more, the last the end).
public struct FlowSchedule {
    public let kind: String
    public let sigmas: [Float]
    public let timesteps: [Double]
    public var order: Int = 1
    public var lowerOrderFinal: Bool = true
    public var solverType: String = "bh2"
    public var disableCorrector: Set<Int> = []

    public var steps: Int { timesteps.count }
}

/// numpy.linspace(start, stop, num) written out (float64): i * step + start, the last = stop.
public func linspace(_ start: Double, _ stop: Double, _ num: Int) -> [Double] {
    if num == 1 { return [start] }
    let step = (stop - start) / Double(num - 1)
    return (0..<num).map { i in i == num - 1 ? stop : Double(i) * step + start }
}

/// diffusers' static flow shift, shift s / (1 + (shift - 1) s), float64.
public func shifted(_ sigma: Double, _ shift: Double) -> Double { shift * sigma / (1 + (shift - 1) * sigma) }

private func stretchToTerminal(_ sigmas: [Double], _ terminal: Double) -> [Double] {
    let scale = (1 - sigmas[sigmas.count - 1]) / (1 - terminal)
    return sigmas.map { 1 - (1 - $0) / scale }
}

private func number(_ config: [String: JsonValue], _ key: String, _ fallback: Double) throws -> Double {
    guard let value = config[key], value != .null else { return fallback }
    let d = try value.asDouble("scheduler config \(key)")
    guard d.isFinite else { throw InvalidArgument("scheduler config \(key) must be a finite number, got \(d)") }
    return d
}

private func truthy(_ config: [String: JsonValue], _ key: String) -> Bool {
    switch config[key] {
    case nil, .null?, .bool(false)?: return false
    case .int(let n)?: return n != 0
    case .double(let d)?: return d != 0
    case .string(let s)?: return !s.isEmpty
    case .array(let a)?: return !a.isEmpty
    default: return true
    }
}

private func eulerSchedule(_ config: [String: JsonValue], _ steps: Int) throws -> FlowSchedule {
    let nTrain = try number(config, "num_train_timesteps", 1000)
    let shift = try number(config, "shift", 1.0)
    let s32 = Float(shift)
    let less = Float(shift - 1)
    var sMin = Float(1.0) / Float(nTrain) // float32 training sigmas, as torch builds them
    sMin = s32 * sMin / (Float(1.0) + less * sMin)
    let sMax = s32 * Float(1.0) / (Float(1.0) + less * Float(1.0))
    var sigmas = linspace(Double(sMax) * nTrain, Double(sMin) * nTrain, steps).map { shifted($0 / nTrain, shift) }
    if truthy(config, "shift_terminal") { sigmas = stretchToTerminal(sigmas, try number(config, "shift_terminal", 0)) }
    let sig32 = sigmas.map { Float($0) }
    return FlowSchedule(kind: eulerScheduler, sigmas: sig32 + [0], timesteps: sig32.map { Double($0 * Float(nTrain)) })
}

private func unipcSchedule(_ config: [String: JsonValue], _ steps: Int) throws -> FlowSchedule {
    guard config["prediction_type"] == JsonValue.string("flow_prediction"), truthy(config, "use_flow_sigmas") else {
        throw InvalidArgument("UniPCMultistepScheduler is supported with prediction_type flow_prediction and use_flow_sigmas true")
    }
    guard config["predict_x0"] != JsonValue.bool(false) else { throw InvalidArgument("UniPCMultistepScheduler with predict_x0 false cannot take flow_prediction") }
    let order = Int(try number(config, "solver_order", 2))
    var solver = (try? config["solver_type"]?.asString("solver_type")) ?? "bh2"
    if ["midpoint", "heun", "logrho"].contains(solver) { solver = "bh2" }
    let final = (try? config["final_sigmas_type"]?.asString("final_sigmas_type")) ?? "zero"
    let lowerFinal = (try? config["lower_order_final"]?.asBoolean("lower_order_final")) ?? true
    guard (1...3).contains(order), ["bh1", "bh2"].contains(solver), ["zero", "sigma_min"].contains(final),
          lowerFinal || order == 1, !(final == "zero" && solver == "bh1") else {
        throw InvalidArgument("UniPC solver_order \(order), solver_type \(solver), final_sigmas_type \(final), lower_order_final \(lowerFinal): allowed are orders 1 to 3 with lower_order_final, bh2 (or bh1 with sigma_min)")
    }
    let nTrain = try number(config, "num_train_timesteps", 1000)
    let shift = try number(config, "flow_shift", 1.0)
    var sigmas = linspace(1.0, 1.0 / nTrain, steps + 1).prefix(steps).map { shifted($0, shift) }
    if truthy(config, "shift_terminal") { sigmas = stretchToTerminal(sigmas, try number(config, "shift_terminal", 0)) }
    if abs(sigmas[0] - 1) < 1e-6 { sigmas[0] -= 1e-6 }
    let times = sigmas.map { Double(Int64($0 * nTrain)) } // float64 -> int64, as diffusers
    let last = final == "sigma_min" ? sigmas[steps - 1] : 0.0
    let disabled = Set((try? config["disable_corrector"]?.asIntArray("disable_corrector")) ?? [])
    return FlowSchedule(kind: unipcScheduler, sigmas: (sigmas + [last]).map { Float($0) }, timesteps: times, order: order,
                        lowerOrderFinal: lowerFinal, solverType: solver, disableCorrector: disabled)
}

/// The schedule of a scheduler_config.json object for `steps` steps; other schedulers and options are refused.
public func flowSchedule(_ config: [String: JsonValue], _ steps: Int) throws -> FlowSchedule {
    guard steps >= 1 else { throw InvalidArgument("steps must be an integer >= 1, got \(steps)") }
    let name = (try? config["_class_name"]?.asString("_class_name")) ?? "none"
    guard name == eulerScheduler || name == unipcScheduler else {
        throw InvalidArgument("scheduler \(name) is not supported; allowed: \(eulerScheduler), \(unipcScheduler)")
    }
    if let bad = unsupportedOptions.first(where: { truthy(config, $0) }) {
        throw InvalidArgument("\(name) with \(bad) is not supported; WanPipeline's schedulers leave it off")
    }
    return name == eulerScheduler ? try eulerSchedule(config, steps) : try unipcSchedule(config, steps)
}

/// e^x - 1 from + - * / only (runtime/flow_sampler.py's portable_expm1).
public func portableExpm1(_ x: Double) -> Double {
    if x == -.infinity || x < -40.0 { return -1.0 }
    let k = (x / (ln2Hi + ln2Lo) + 0.5).rounded(.down)
    let r = (x - k * ln2Hi) - k * ln2Lo
    var p = 1.0
    for n in stride(from: expm1Terms, through: 2, by: -1) { p = 1.0 + r * p / Double(n) }
    let scale = Double(sign: .plus, exponent: Int(k), significand: 1.0) // 2^k exactly
    return scale * (r * p) + (scale - 1.0)
}

/// lambda = log(1 - sigma) - log(sigma) in float32 stages; +inf at sigma 0.
public func logSnr(_ sigma: Float) -> Float {
    if sigma == 0 { return .infinity }
    return Float(portableLog(Double(Float(1) - sigma))) - Float(portableLog(Double(sigma)))
}

/// Gaussian elimination with partial pivoting (float64), for UniPC's order-3 rho.
public func solve(_ matrix: [[Double]], _ rhs: [Double]) -> [Double] {
    let n = rhs.count
    var a = (0..<n).map { matrix[$0] + [rhs[$0]] }
    for col in 0..<n {
        var pivot = col
        for r in (col + 1)..<max(n, col + 1) where abs(a[r][col]) > abs(a[pivot][col]) { pivot = r }
        a.swapAt(col, pivot)
        for r in (col + 1)..<max(n, col + 1) {
            let f = a[r][col] / a[col][col]
            a[r] = (0...n).map { c in a[r][c] - f * a[col][c] }
        }
    }
    var out = [Double](repeating: 0, count: n)
    for r in stride(from: n - 1, through: 0, by: -1) {
        var sum = 0.0
        for c in (r + 1)..<max(n, r + 1) { sum += a[r][c] * out[c] }
        out[r] = (a[r][n] - sum) / a[r][r]
    }
    return out
}

/// One UniPC update's float32 scalars: x_t = ratio x - cM0 m0 - cB (sum_k rho_k (m_k - m0) / r_k [+ rho_t (m_t - m0)]).
public struct UniPCUpdate {
    public let ratio: Float
    public let cM0: Float
    public let cB: Float
    public let rks: [Float]
    public let rhos: [Float]
}

/// diffusers' multistep_uni_{p,c}_bh_update scalars for the step from sigma index s0 to t.
public func unipcUpdate(_ sigmas: [Float], _ s0: Int, _ t: Int, _ order: Int, _ bh2: Bool, _ corrector: Bool) -> UniPCUpdate {
    let lamS0 = logSnr(sigmas[s0])
    let h = logSnr(sigmas[t]) - lamS0
    let rks = (0..<(order - 1)).map { (logSnr(sigmas[s0 - $0 - 1]) - lamS0) / h }
    let hh = -h
    let hPhi1 = Float(portableExpm1(Double(hh)))
    var hPhiK = hPhi1 / hh - Float(1)
    let bH = bh2 ? hPhi1 : hh
    var factorial = 1
    var b: [Double] = []
    for i in 1...order {
        b.append(Double(hPhiK * Float(factorial) / bH))
        factorial *= i + 1
        hPhiK = hPhiK / hh - Float(1.0 / Double(factorial))
    }
    let powers = (1...order).map { i in (rks + [Float(1)]).map { r in Double(i == 1 ? Float(1) : i == 2 ? r : r * r) } }
    let rhos: [Float]
    if corrector {
        rhos = order == 1 ? [0.5] : solve(powers, b).map { Float($0) }
    } else if order == 1 {
        rhos = []
    } else if order == 2 {
        rhos = [0.5]
    } else {
        rhos = solve(powers.dropLast().map { Array($0.dropLast()) }, Array(b.dropLast())).map { Float($0) }
    }
    let alphaT = Float(1) - sigmas[t]
    return UniPCUpdate(ratio: sigmas[t] / sigmas[s0], cM0: alphaT * hPhi1, cB: alphaT * bH, rks: rks, rhos: rhos)
}

/// UniP's order at each step: warm-up, and min(order, steps - i) near the end with lower_order_final.
public func predictorOrders(_ schedule: FlowSchedule) -> [Int] {
    (0..<schedule.steps).map { i in
        let order = schedule.lowerOrderFinal ? min(schedule.order, schedule.steps - i) : schedule.order
        return min(order, min(i, schedule.order) + 1)
    }
}

/// x_t from x and the data estimates (newest last), in diffusers' operation order.
private func applyUpdate(_ u: UniPCUpdate, _ x: [Float], _ history: [[Float]], _ mT: [Float]?) -> [Float] {
    let m0 = history[history.count - 1]
    let terms = min(u.rks.count, u.rhos.count)
    return (0..<x.count).map { e in
        let xT = u.ratio * x[e] - u.cM0 * m0[e]
        var res: Float?
        for k in stride(from: 1, through: terms, by: 1) {
            let term = u.rhos[k - 1] * ((history[history.count - 1 - k][e] - m0[e]) / u.rks[k - 1])
            res = res.map { $0 + term } ?? term
        }
        if let mT = mT {
            let d1 = u.rhos[u.rhos.count - 1] * (mT[e] - m0[e])
            res = res.map { $0 + d1 } ?? d1
        }
        guard let r = res else { return xT }
        return xT - u.cB * r
    }
}

/// LPL's jump and UniPC's data estimate: x - v sigma (float32).
public func leapTo(_ x: [Float], _ v: [Float], _ sigma: Float) -> [Float] {
    (0..<x.count).map { x[$0] - v[$0] * sigma }
}

/// A solver's update for one clip: step(i, x, v) -> x at sigma_{i+1}.
public struct FlowStepper {
    let body: (Int, [Float], [Float]) -> [Float]

    public func step(_ i: Int, _ x: [Float], _ v: [Float]) -> [Float] { body(i, x, v) }
}

/// A fresh stepper for one clip (UniPC keeps the last `order` data estimates and the last sample).
public func stepperFor(_ schedule: FlowSchedule) -> FlowStepper {
    let sigmas = schedule.sigmas
    if schedule.kind == eulerScheduler {
        return FlowStepper { i, x, v in leapTo(x, v, Float(Double(sigmas[i]) - Double(sigmas[i + 1]))) }
    }
    let orders = predictorOrders(schedule)
    let bh2 = schedule.solverType == "bh2"
    let predictors = orders.enumerated().map { unipcUpdate(sigmas, $0.offset, $0.offset + 1, $0.element, bh2, false) }
    let correctors: [UniPCUpdate?] = orders.indices.map { i in
        i == 0 || schedule.disableCorrector.contains(i - 1) ? nil : unipcUpdate(sigmas, i - 1, i, orders[i - 1], bh2, true)
    }
    var history: [[Float]] = []
    var last: [Float]?
    return FlowStepper { i, x0, v in
        let m = leapTo(x0, v, sigmas[i])
        var x = x0
        if let corrector = correctors[i], let prev = last { x = applyUpdate(corrector, prev, history, m) }
        history = Array((history + [m]).suffix(schedule.order))
        last = x
        return applyUpdate(predictors[i], x, history, nil)
    }
}

/// WanPipeline's guidance: v_u + g (v_c - v_u) for g > 1 (g rounded to float32), v_c alone otherwise.
public func guide(_ vCond: [Float], _ vUncond: [Float]?, _ guidance: Double) -> [Float] {
    guard guidance > 1.0, let vU = vUncond else { return vCond }
    let g = Float(guidance)
    return (0..<vCond.count).map { vU[$0] + g * (vCond[$0] - vU[$0]) }
}

/// A Wan run's settings: the schedule, WanPipeline's guidance, LPL and TDTM steps (refused as Python refuses them).
public struct FlowConfig {
    public let schedule: FlowSchedule
    public let guidance: Double
    public let leap: LeapConfig
    public let tdtmSteps: Int

    public init(_ schedule: FlowSchedule, guidance: Double = 5.0, leap: LeapConfig = LeapConfig(), tdtmSteps: Int = 0) throws {
        let steps = schedule.steps
        guard guidance.isFinite else { throw InvalidArgument("guidance must be a finite number, got \(guidance)") }
        guard (0...steps).contains(tdtmSteps) else { throw InvalidArgument("TDTM steps must be 0..\(steps) for \(steps) steps, got \(tdtmSteps)") }
        guard leap.mode != .fixed || (steps >= 3 && (1...(steps - 2)).contains(leap.step)) else {
            throw InvalidArgument("a leap after N steps needs 1 <= N <= \(steps - 2) for \(steps) steps; got \(leap.step)")
        }
        self.schedule = schedule
        self.guidance = guidance
        self.leap = leap
        self.tdtmSteps = tdtmSteps
    }
}

/// One transformer call: `part` is "transformer" or "transformer_tdtm", `prompt` "cond" or "uncond".
public struct TransformerFn {
    let body: ([Float], Float, String, String, Int) throws -> [Float]

    public init(_ body: @escaping ([Float], Float, String, String, Int) throws -> [Float]) { self.body = body }

    public func velocity(_ x: [Float], _ timestep: Float, _ prompt: String, _ part: String, _ step: Int) throws -> [Float] {
        try body(x, timestep, prompt, part, step)
    }
}

public struct FlowResult {
    public let x: [Float]
    public let steps: Int
    public let calls: Int
    public let mergedSteps: Int
    public let leapAt: Int?
    public let similarities: [Double]
}

/// Flow sampling from `latents` ([1, C, F, H, W]) on cfg's schedule, WanPipeline's CFG around each step's calls.
public func sampleFlow(_ transformer: TransformerFn, _ latents: [Float], _ shape: [Int], _ cfg: FlowConfig) throws -> FlowResult {
    let schedule = cfg.schedule
    let stepper = stepperFor(schedule)
    let auto = cfg.leap.mode == .auto ? AutoLeap(cfg.leap, schedule.steps) : nil
    var x = latents
    var (steps, calls, merged) = (0, 0, 0)
    var leapAt: Int?
    for i in 0..<schedule.steps {
        let part = i < cfg.tdtmSteps ? "transformer_tdtm" : "transformer"
        let t = Float(schedule.timesteps[i])
        let vCond = try transformer.velocity(x, t, "cond", part, i)
        let vUncond: [Float]? = try cfg.guidance > 1.0 ? transformer.velocity(x, t, "uncond", part, i) : nil
        let v = guide(vCond, vUncond, cfg.guidance)
        steps += 1
        calls += vUncond != nil ? 2 : 1
        if i < cfg.tdtmSteps { merged += 1 }
        var leap = cfg.leap.mode == .fixed && i == cfg.leap.step
        if let auto = auto, try auto.shouldLeap(i, v, shape) { leap = true }
        if leap && i < schedule.steps - 1 {
            x = leapTo(x, v, schedule.sigmas[i]) // jump over the whole remaining sigma
            leapAt = i
            break
        }
        x = stepper.step(i, x, v)
    }
    return FlowResult(x: x, steps: steps, calls: calls, mergedSteps: merged, leapAt: leapAt, similarities: auto?.similarities ?? [])
}

/// WanPipeline's un-scaling before the VAE: latents / (1 / std) + mean per channel ([1, C, F, H, W]).
public func unscaleLatents(_ x: [Float], _ shape: [Int], _ mean: [Double], _ std: [Double]) -> [Float] {
    let plane = shape.dropFirst(2).reduce(1, *)
    return (0..<x.count).map { k in
        let c = k / plane
        return x[k] / (Float(1) / Float(std[c])) + Float(mean[c])
    }
}

// Python's html.unescape on the entities a port supports: amp, lt, gt, quot, nbsp (with or without the
// semicolon), apos;, and decimal / hexadecimal character references.
private let entities = ["amp;": "&", "amp": "&", "lt;": "<", "lt": "<", "gt;": ">", "gt": ">", "quot;": "\"", "quot": "\"",
                        "apos;": "'", "nbsp;": "\u{a0}", "nbsp": "\u{a0}"]
private let charrefPattern = try! NSRegularExpression(pattern: "&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\\t\\n\\f <&#;]{1,32};?)")
private let spacesPattern = try! NSRegularExpression(pattern: "[\\s\\u00a0]+")

private func charref(_ body: String) -> String {
    let chars = Array(body)
    if chars[0] == "#" {
        let hex = chars.count > 1 && (chars[1] == "x" || chars[1] == "X")
        let digits = String(chars.dropFirst(hex ? 2 : 1)).trimmingCharacters(in: CharacterSet(charactersIn: ";"))
        guard let code = UInt64(digits, radix: hex ? 16 : 10), code != 0, code <= 0x10FFFF, !(0xD800...0xDFFF).contains(code),
              let scalar = Unicode.Scalar(UInt32(code)) else { return "\u{FFFD}" }
        return String(Character(scalar))
    }
    if let found = entities[body] { return found }
    for x in stride(from: chars.count - 1, through: 2, by: -1) {
        if let found = entities[String(chars[0..<x])] { return found + String(chars[x...]) }
    }
    return "&" + body
}

/// WanPipeline's prompt_clean without ftfy: unescape HTML twice, collapse white space, strip.
public func promptClean(_ text: String) -> String {
    func once(_ s: String) -> String {
        let ns = s as NSString
        var out = ""
        var at = 0
        for match in charrefPattern.matches(in: s, range: NSRange(location: 0, length: ns.length)) {
            out += ns.substring(with: NSRange(location: at, length: match.range.location - at))
            out += charref(ns.substring(with: match.range(at: 1)))
            at = match.range.location + match.range.length
        }
        return out + ns.substring(from: at)
    }
    let unescaped = once(once(text)).trimmingCharacters(in: CharacterSet.whitespacesAndNewlines.union(CharacterSet(charactersIn: "\u{a0}")))
    let ns = unescaped as NSString
    return spacesPattern.stringByReplacingMatches(in: unescaped, range: NSRange(location: 0, length: ns.length), withTemplate: " ")
}

// Diffusers' flow-matching sampling for a WanPipeline export, bit for bit as runtime/flow_schedule.py and
// runtime/flow_sampler.py (docs/contract.md, "The Wan pipeline"): the schedules of
// FlowMatchEulerDiscreteScheduler and UniPCMultistepScheduler (flow prediction), their steps, WanPipeline's
// classifier-free guidance, LPL and TDTM steps, the VAE's latent un-scaling and WanPipeline's prompt cleaning.
// Mirrors web_demo/core/flow.js and ios_demo TomobileCore/Flow.swift.
//
// Arithmetic: schedules in float64 with float32 roundings where diffusers rounds; every latent operation
// in Float (JVM float arithmetic is IEEE single, so `a * b` is f32(a * b)).
package org.tomobile.core

const val EULER = "FlowMatchEulerDiscreteScheduler"
const val UNIPC = "UniPCMultistepScheduler"
private val UNSUPPORTED = listOf("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "invert_sigmas",
    "stochastic_sampling", "thresholding", "solver_p", "use_dynamic_shifting")
private const val LN2_HI = 6.93147180369123816490e-01
private const val LN2_LO = 1.90821492927058770002e-10
private const val EXPM1_TERMS = 20

/** What the sampler needs from a scheduler config for `timesteps.size` steps (sigmas: one more, the last the end). */
class FlowSchedule(
    val kind: String,
    val sigmas: FloatArray,
    val timesteps: DoubleArray,
    val order: Int = 1,
    val lowerOrderFinal: Boolean = true,
    val solverType: String = "bh2",
    val disableCorrector: Set<Int> = emptySet(),
) {
    val steps: Int get() = timesteps.size
}

/** numpy.linspace(start, stop, num) written out (float64): i * step + start, the last = stop. */
fun linspace(start: Double, stop: Double, num: Int): DoubleArray {
    if (num == 1) return doubleArrayOf(start)
    val step = (stop - start) / (num - 1)
    return DoubleArray(num) { i -> if (i == num - 1) stop else i * step + start }
}

/** diffusers' static flow shift, shift s / (1 + (shift - 1) s), float64. */
fun shifted(sigma: Double, shift: Double): Double = shift * sigma / (1 + (shift - 1) * sigma)

private fun stretchToTerminal(sigmas: DoubleArray, terminal: Double): DoubleArray {
    val scale = (1 - sigmas.last()) / (1 - terminal)
    return DoubleArray(sigmas.size) { 1 - (1 - sigmas[it]) / scale }
}

private fun Map<String, Any?>.number(key: String, default: Double): Double {
    val value = this[key] ?: return default
    val d = (value as? Number)?.toDouble()
    require(d != null && d.isFinite()) { "scheduler config $key must be a finite number, got $value" }
    return d
}

private fun Map<String, Any?>.truthy(key: String): Boolean = when (val v = this[key]) {
    null, false -> false
    is Number -> v.toDouble() != 0.0
    is String -> v.isNotEmpty()
    is List<*> -> v.isNotEmpty()
    else -> true
}

private fun eulerSchedule(config: Map<String, Any?>, steps: Int): FlowSchedule {
    val nTrain = config.number("num_train_timesteps", 1000.0)
    val shift = config.number("shift", 1.0)
    val s32 = shift.toFloat()
    val less = (shift - 1).toFloat()
    var sMin = 1.0f / nTrain.toFloat() // float32 training sigmas, as torch builds them
    sMin = s32 * sMin / (1.0f + less * sMin)
    val sMax = s32 * 1.0f / (1.0f + less * 1.0f)
    var sigmas = linspace(sMax * nTrain, sMin * nTrain, steps).map { shifted(it / nTrain, shift) }.toDoubleArray()
    if (config.truthy("shift_terminal")) sigmas = stretchToTerminal(sigmas, config.number("shift_terminal", 0.0))
    val sig32 = FloatArray(steps) { sigmas[it].toFloat() }
    return FlowSchedule(EULER, sig32 + 0.0f, DoubleArray(steps) { (sig32[it] * nTrain.toFloat()).toDouble() })
}

private fun unipcSchedule(config: Map<String, Any?>, steps: Int): FlowSchedule {
    require(config["prediction_type"] == "flow_prediction" && config.truthy("use_flow_sigmas")) {
        "UniPCMultistepScheduler is supported with prediction_type flow_prediction and use_flow_sigmas true, got ${config["prediction_type"]} and ${config["use_flow_sigmas"]}"
    }
    require(config["predict_x0"] != false) { "UniPCMultistepScheduler with predict_x0 false cannot take flow_prediction" }
    val order = config.number("solver_order", 2.0).toInt()
    val solver = (config["solver_type"] as? String ?: "bh2").let { if (it in listOf("midpoint", "heun", "logrho")) "bh2" else it }
    val final = config["final_sigmas_type"] as? String ?: "zero"
    val lowerFinal = config["lower_order_final"] as? Boolean ?: true
    require(order in 1..3 && solver in listOf("bh1", "bh2") && final in listOf("zero", "sigma_min") &&
        (lowerFinal || order == 1) && !(final == "zero" && solver == "bh1")) {
        "UniPC solver_order $order, solver_type $solver, final_sigmas_type $final, lower_order_final $lowerFinal: allowed are orders 1 to 3 with lower_order_final, bh2 (or bh1 with sigma_min)"
    }
    val nTrain = config.number("num_train_timesteps", 1000.0)
    val shift = config.number("flow_shift", 1.0)
    var sigmas = linspace(1.0, 1.0 / nTrain, steps + 1).copyOf(steps).map { shifted(it, shift) }.toDoubleArray()
    if (config.truthy("shift_terminal")) sigmas = stretchToTerminal(sigmas, config.number("shift_terminal", 0.0))
    if (Math.abs(sigmas[0] - 1) < 1e-6) sigmas[0] -= 1e-6
    val times = DoubleArray(steps) { (sigmas[it] * nTrain).toLong().toDouble() } // float64 -> int64, as diffusers
    val last = if (final == "sigma_min") sigmas.last() else 0.0
    val disabled = (config["disable_corrector"] as? List<*> ?: emptyList<Any?>()).map { (it as Number).toInt() }.toSet()
    return FlowSchedule(UNIPC, FloatArray(steps + 1) { if (it < steps) sigmas[it].toFloat() else last.toFloat() }, times,
        order, lowerFinal, solver, disabled)
}

/** The schedule of a scheduler_config.json object for `steps` steps; other schedulers and options are refused. */
fun flowSchedule(config: Map<String, Any?>, steps: Int): FlowSchedule {
    require(steps >= 1) { "steps must be an integer >= 1, got $steps" }
    val name = config["_class_name"]
    require(name == EULER || name == UNIPC) { "scheduler $name is not supported; allowed: $EULER, $UNIPC" }
    UNSUPPORTED.firstOrNull { config.truthy(it) }?.let { throw IllegalArgumentException("$name with $it is not supported; WanPipeline's schedulers leave it off") }
    return if (name == EULER) eulerSchedule(config, steps) else unipcSchedule(config, steps)
}

/** e^x - 1 from + - * / only (runtime/flow_sampler.py's portable_expm1). */
fun portableExpm1(x: Double): Double {
    if (x == Double.NEGATIVE_INFINITY || x < -40.0) return -1.0
    val k = Math.floor(x / (LN2_HI + LN2_LO) + 0.5)
    val r = (x - k * LN2_HI) - k * LN2_LO
    var p = 1.0
    for (n in EXPM1_TERMS downTo 2) p = 1.0 + r * p / n
    val scale = Math.pow(2.0, k)
    return scale * (r * p) + (scale - 1.0)
}

/** lambda = log(1 - sigma) - log(sigma) in float32 stages; +inf at sigma 0. */
fun logSnr(sigma: Float): Float =
    if (sigma == 0.0f) Float.POSITIVE_INFINITY else portableLog((1.0f - sigma).toDouble()).toFloat() - portableLog(sigma.toDouble()).toFloat()

/** Gaussian elimination with partial pivoting (float64), for UniPC's order-3 rho. */
fun solve(matrix: List<DoubleArray>, rhs: DoubleArray): DoubleArray {
    val n = rhs.size
    val a = Array(n) { matrix[it] + rhs[it] }
    for (col in 0 until n) {
        var pivot = col
        for (r in col + 1 until n) if (Math.abs(a[r][col]) > Math.abs(a[pivot][col])) pivot = r
        a[col] = a[pivot].also { a[pivot] = a[col] }
        for (r in col + 1 until n) {
            val f = a[r][col] / a[col][col]
            a[r] = DoubleArray(n + 1) { c -> a[r][c] - f * a[col][c] }
        }
    }
    val out = DoubleArray(n)
    for (r in n - 1 downTo 0) {
        var sum = 0.0
        for (c in r + 1 until n) sum += a[r][c] * out[c]
        out[r] = (a[r][n] - sum) / a[r][r]
    }
    return out
}

/** One UniPC update's float32 scalars: x_t = ratio x - cM0 m0 - cB (sum_k rho_k (m_k - m0) / r_k [+ rho_t (m_t - m0)]). */
class UniPCUpdate(val ratio: Float, val cM0: Float, val cB: Float, val rks: FloatArray, val rhos: FloatArray)

/** diffusers' multistep_uni_{p,c}_bh_update scalars for the step from sigma index s0 to t. */
fun unipcUpdate(sigmas: FloatArray, s0: Int, t: Int, order: Int, bh2: Boolean, corrector: Boolean): UniPCUpdate {
    val lamS0 = logSnr(sigmas[s0])
    val h = logSnr(sigmas[t]) - lamS0
    val rks = FloatArray(order - 1) { (logSnr(sigmas[s0 - it - 1]) - lamS0) / h }
    val hh = -h
    val hPhi1 = portableExpm1(hh.toDouble()).toFloat()
    var hPhiK = hPhi1 / hh - 1.0f
    val bH = if (bh2) hPhi1 else hh
    var factorial = 1
    val b = DoubleArray(order)
    for (i in 1..order) {
        b[i - 1] = (hPhiK * factorial.toFloat() / bH).toDouble()
        factorial *= i + 1
        hPhiK = hPhiK / hh - (1.0 / factorial).toFloat()
    }
    val powers = (1..order).map { i -> (rks.toList() + 1.0f).map { r -> (if (i == 1) 1.0f else if (i == 2) r else r * r).toDouble() }.toDoubleArray() }
    val rhos = when {
        corrector -> if (order == 1) floatArrayOf(0.5f) else solve(powers, b).map { it.toFloat() }.toFloatArray()
        order == 1 -> FloatArray(0)
        order == 2 -> floatArrayOf(0.5f)
        else -> solve(powers.dropLast(1).map { it.copyOf(it.size - 1) }, b.copyOf(order - 1)).map { it.toFloat() }.toFloatArray()
    }
    val alphaT = 1.0f - sigmas[t]
    return UniPCUpdate(sigmas[t] / sigmas[s0], alphaT * hPhi1, alphaT * bH, rks, rhos)
}

/** UniP's order at each step: warm-up, and min(order, steps - i) near the end with lower_order_final. */
fun predictorOrders(schedule: FlowSchedule): IntArray = IntArray(schedule.steps) { i ->
    val order = if (schedule.lowerOrderFinal) minOf(schedule.order, schedule.steps - i) else schedule.order
    minOf(order, minOf(i, schedule.order) + 1)
}

/** x_t from x and the data estimates (newest last), in diffusers' operation order. */
private fun applyUpdate(u: UniPCUpdate, x: FloatArray, history: List<FloatArray>, mT: FloatArray?): FloatArray {
    val m0 = history.last()
    val terms = minOf(u.rks.size, u.rhos.size)
    return FloatArray(x.size) { e ->
        val xT = u.ratio * x[e] - u.cM0 * m0[e]
        var res: Float? = null
        for (k in 1..terms) {
            val term = u.rhos[k - 1] * ((history[history.size - 1 - k][e] - m0[e]) / u.rks[k - 1])
            res = if (res == null) term else res + term
        }
        if (mT != null) {
            val d1 = u.rhos.last() * (mT[e] - m0[e])
            res = if (res == null) d1 else res + d1
        }
        if (res == null) xT else xT - u.cB * res
    }
}

/** LPL's jump and UniPC's data estimate: x - v sigma (float32). */
fun leapTo(x: FloatArray, v: FloatArray, sigma: Float): FloatArray = FloatArray(x.size) { x[it] - v[it] * sigma }

/** A solver's update for one clip: step(i, x, v) -> x at sigma_{i+1}. */
fun interface FlowStepper {
    fun step(i: Int, x: FloatArray, v: FloatArray): FloatArray
}

/** A fresh stepper for one clip (UniPC keeps the last `order` data estimates and the last sample). */
fun stepperFor(schedule: FlowSchedule): FlowStepper {
    val sigmas = schedule.sigmas
    if (schedule.kind == EULER) return FlowStepper { i, x, v -> leapTo(x, v, (sigmas[i].toDouble() - sigmas[i + 1].toDouble()).toFloat()) }
    val orders = predictorOrders(schedule)
    val bh2 = schedule.solverType == "bh2"
    val predictors = orders.mapIndexed { i, p -> unipcUpdate(sigmas, i, i + 1, p, bh2, false) }
    val correctors = orders.indices.map { i ->
        if (i == 0 || (i - 1) in schedule.disableCorrector) null else unipcUpdate(sigmas, i - 1, i, orders[i - 1], bh2, true)
    }
    var history = listOf<FloatArray>()
    var last: FloatArray? = null
    return FlowStepper { i, x0, v ->
        val m = leapTo(x0, v, sigmas[i])
        val corrector = correctors[i]
        val prev = last
        val x = if (corrector != null && prev != null) applyUpdate(corrector, prev, history, m) else x0
        history = (history + listOf(m)).takeLast(schedule.order)
        last = x
        applyUpdate(predictors[i], x, history, null)
    }
}

/** WanPipeline's guidance: v_u + g (v_c - v_u) for g > 1 (g rounded to float32), v_c alone otherwise. */
fun guide(vCond: FloatArray, vUncond: FloatArray?, guidance: Double): FloatArray {
    if (guidance <= 1.0 || vUncond == null) return vCond
    val g = guidance.toFloat()
    return FloatArray(vCond.size) { vUncond[it] + g * (vCond[it] - vUncond[it]) }
}

/** A Wan run's settings: the schedule, WanPipeline's guidance, LPL and TDTM steps (refused as Python refuses them). */
class FlowConfig(val schedule: FlowSchedule, val guidance: Double = 5.0, val leap: LeapConfig = LeapConfig(), val tdtmSteps: Int = 0) {
    init {
        val steps = schedule.steps
        require(guidance.isFinite()) { "guidance must be a finite number, got $guidance" }
        require(tdtmSteps in 0..steps) { "TDTM steps must be 0..$steps for $steps steps, got $tdtmSteps" }
        require(leap.mode != LeapMode.FIXED || leap.step in 1..steps - 2) {
            "a leap after N steps needs 1 <= N <= ${steps - 2} for $steps steps; got ${leap.step}"
        }
    }
}

/** One transformer call: `part` is "transformer" or "transformer_tdtm", `prompt` "cond" or "uncond". */
fun interface TransformerFn {
    fun velocity(x: FloatArray, timestep: Float, prompt: String, part: String, step: Int): FloatArray
}

class FlowResult(val x: FloatArray, val steps: Int, val calls: Int, val mergedSteps: Int, val leapAt: Int?, val similarities: List<Double>)

/** Flow sampling from `latents` ([1, C, F, H, W]) on cfg's schedule, WanPipeline's CFG around each step's calls. */
fun sampleFlow(transformer: TransformerFn, latents: FloatArray, shape: IntArray, cfg: FlowConfig): FlowResult {
    val schedule = cfg.schedule
    val stepper = stepperFor(schedule)
    val auto = if (cfg.leap.mode == LeapMode.AUTO) AutoLeap(cfg.leap, schedule.steps) else null
    var x = latents.copyOf()
    var (steps, calls, merged) = Triple(0, 0, 0)
    var leapAt: Int? = null
    for (i in 0 until schedule.steps) {
        val part = if (i < cfg.tdtmSteps) "transformer_tdtm" else "transformer"
        val t = schedule.timesteps[i].toFloat()
        val vCond = transformer.velocity(x, t, "cond", part, i)
        val vUncond = if (cfg.guidance > 1.0) transformer.velocity(x, t, "uncond", part, i) else null
        val v = guide(vCond, vUncond, cfg.guidance)
        steps++
        calls += if (vUncond != null) 2 else 1
        if (i < cfg.tdtmSteps) merged++
        var leap = cfg.leap.mode == LeapMode.FIXED && i == cfg.leap.step
        if (auto != null && auto.shouldLeap(i, v, shape)) leap = true
        if (leap && i < schedule.steps - 1) {
            x = leapTo(x, v, schedule.sigmas[i]) // jump over the whole remaining sigma
            leapAt = i
            break
        }
        x = stepper.step(i, x, v)
    }
    return FlowResult(x, steps, calls, merged, leapAt, auto?.similarities ?: emptyList())
}

/** WanPipeline's un-scaling before the VAE: latents / (1 / std) + mean per channel ([1, C, F, H, W]). */
fun unscaleLatents(x: FloatArray, shape: IntArray, mean: DoubleArray, std: DoubleArray): FloatArray {
    val plane = shape.drop(2).fold(1) { a, b -> a * b }
    return FloatArray(x.size) { k ->
        val c = k / plane
        x[k] / (1.0f / std[c].toFloat()) + mean[c].toFloat()
    }
}

// Python's html.unescape on the entities a port supports: amp, lt, gt, quot, nbsp (with or without the
// semicolon), apos;, and decimal / hexadecimal character references.
private val ENTITIES = mapOf("amp;" to "&", "amp" to "&", "lt;" to "<", "lt" to "<", "gt;" to ">", "gt" to ">",
    "quot;" to "\"", "quot" to "\"", "apos;" to "'", "nbsp;" to "\u00a0", "nbsp" to "\u00a0")
private val CHARREF = Regex("&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\\t\\n\\u000c <&#;]{1,32};?)")
private val SPACES = Regex("[\\s\\u00a0]+")

private fun charref(body: String): String {
    if (body[0] == '#') {
        val hex = body[1] == 'x' || body[1] == 'X'
        val code = body.substring(if (hex) 2 else 1).trimEnd(';').toLong(if (hex) 16 else 10)
        if (code == 0L || code > 0x10ffff || code in 0xd800..0xdfff) return "\ufffd"
        return String(Character.toChars(code.toInt()))
    }
    ENTITIES[body]?.let { return it }
    for (x in body.length - 1 downTo 2) ENTITIES[body.substring(0, x)]?.let { return it + body.substring(x) }
    return "&$body"
}

/** WanPipeline's prompt_clean without ftfy: unescape HTML twice, collapse white space, strip. */
fun promptClean(text: String): String {
    fun once(s: String) = CHARREF.replace(s) { charref(it.groupValues[1]) }
    return SPACES.replace(once(once(text)).trim { it.isWhitespace() || it == '\u00a0' }, " ").trim()
}

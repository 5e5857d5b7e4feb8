// Rectified-flow Euler sampler (Open-Sora) with On-device Sora's step leap (LPL) and TDTM schedule,
// ported from runtime/sampler.py so that, fed the same velocities, it computes the same float32 bits
// (docs/contract.md, "The sampler"). Mirrors web_demo/core/sampler.js and ios_demo TomobileCore/Sampler.swift.
//
// Convention: x_t = (1 - t) x0 + t eps, the denoiser predicts v = eps - x0, and sampling runs from t = 1
// (noise) to t = 0 with Euler steps x <- x - v dt. Arithmetic: times and similarities in float64 (sums
// in index order), the latent in float32: dt = f32(t_i - t_{i+1}); x = f32(x - f32(v * dt)); at a leap
// x = f32(x - f32(v * f32(t_i))); the denoiser gets f32(t_i). Classifier-free guidance runs inside the
// exported denoiser graph: the sampler passes `guidance` through the Denoiser interface.
package org.tomobile.core

/** On-device Sora's RFLOW scheduler: a dynamic leap is allowed from step 14 of 30. */
const val AUTO_MIN_STEPS = 14
const val AUTO_REFERENCE_STEPS = 30

/** Open-Sora's RFLOW trains and samples on 1000 integer timesteps. */
const val NUM_TIMESTEPS = 1000

/** torch's cosine_similarity eps: each norm is clamped to at least this. */
const val COSINE_EPS = 1e-8

enum class TimestepMode(val value: String) {
    DISCRETE("discrete"),
    CONTINUOUS("continuous");

    companion object {
        fun parse(text: String): TimestepMode = parseMode(entries, text, "timesteps") { it.value }
    }
}

enum class LeapMode { OFF, FIXED, AUTO }

enum class SimilarityMode(val value: String) {
    ORIGINAL("original"), // On-device Sora: row cosines of v[0, 0, 0], averaged
    FULL("full"); // one cosine over the whole velocity

    companion object {
        fun parse(text: String): SimilarityMode = parseMode(entries, text, "lpl_similarity") { it.value }
    }
}

private fun <T> parseMode(values: List<T>, text: String, option: String, name: (T) -> String): T =
    values.firstOrNull { name(it) == text }
        ?: throw IllegalArgumentException("bad $option value \"$text\"; allowed: ${values.joinToString(", ") { name(it) }}")

/** LPL settings: off, a fixed leap after `step` normal steps, or auto (On-device Sora's rule and defaults). */
data class LeapConfig(
    val mode: LeapMode = LeapMode.OFF,
    val step: Int = 15,
    val minSteps: Int? = null,
    val tolerance: Double = 1e-3,
    val patience: Int = 3,
    val similarity: SimilarityMode = SimilarityMode.ORIGINAL,
) {
    companion object {
        /** "off" | "auto" | N (fixed leap after N steps, N >= 1), as `tomobile generate --lpl`. */
        fun parse(text: String, similarity: SimilarityMode = SimilarityMode.ORIGINAL): LeapConfig {
            val value = text.trim().lowercase()
            if (value == "off") return LeapConfig(similarity = similarity)
            if (value == "auto") return LeapConfig(mode = LeapMode.AUTO, similarity = similarity)
            val n = if (value.isNotEmpty() && value.all { it in '0'..'9' }) value.toIntOrNull() else null
            if (n != null && n >= 1) return LeapConfig(mode = LeapMode.FIXED, step = n, similarity = similarity)
            throw IllegalArgumentException("bad lpl value \"$text\"; allowed: off, auto, or a step count N >= 1")
        }
    }
}

/** Everything the loop needs. `spatial` picks the spatial-ToMe denoiser variants for every call. */
data class SamplerConfig(
    val steps: Int = 30,
    val guidance: Float = 4.0f,
    val shift: Double = 2.0,
    val leap: LeapConfig = LeapConfig(),
    val tdtmSteps: Int = 0,
    val timesteps: TimestepMode = TimestepMode.DISCRETE,
    val spatial: Boolean = false,
) {
    init {
        require(steps >= 1) { "steps must be >= 1, got $steps" }
        require(timesteps != TimestepMode.DISCRETE || steps <= NUM_TIMESTEPS) {
            "discrete timesteps allow at most $NUM_TIMESTEPS steps, got $steps"
        }
        require(tdtmSteps in 0..steps) { "TDTM steps must be 0..$steps for $steps steps, got $tdtmSteps" }
        require(guidance.isFinite() && shift.isFinite()) { "guidance and shift must be finite numbers, got $guidance and $shift" }
        require(leap.mode != LeapMode.FIXED || leap.step in 1..steps - 2) {
            "a leap after N steps needs 1 <= N <= ${steps - 2} for $steps steps; got ${leap.step} (at N = ${steps - 1} the last step is a plain step: no leap)"
        }
    }
}

/** Open-Sora's timestep transform t -> ratio t / (1 + (ratio - 1) t). */
fun shiftTime(t: Double, ratio: Double): Double = ratio * t / (1.0 + (ratio - 1.0) * t)

/**
 * steps + 1 times from 1 down to 0: shift(u_i) for i = 0..steps-1, then 0. continuous: u_i = 1 - i / steps;
 * discrete (Open-Sora): u_i = round_half_even((1 - i / steps) * 1000) / 1000.
 */
fun timesteps(steps: Int, shift: Double, mode: TimestepMode = TimestepMode.DISCRETE): DoubleArray {
    require(mode != TimestepMode.DISCRETE || steps <= NUM_TIMESTEPS) {
        "discrete timesteps allow at most $NUM_TIMESTEPS steps, got $steps; use continuous timesteps"
    }
    val times = DoubleArray(steps + 1) // the last stays 0.0
    for (i in 0 until steps) {
        var u = 1.0 - i.toDouble() / steps.toDouble()
        if (mode == TimestepMode.DISCRETE) u = Math.rint(u * NUM_TIMESTEPS) / NUM_TIMESTEPS // rint: half to even
        times[i] = shiftTime(u, shift)
    }
    return times
}

/** On-device Sora's minimum before a dynamic leap: step 14 of 30, in proportion for other counts. */
fun defaultMinSteps(steps: Int): Int = maxOf(1, Math.rint(steps * AUTO_MIN_STEPS.toDouble() / AUTO_REFERENCE_STEPS).toInt())

/** Cosine of each row (length `width`) of a and b from `offset`, float64, sums in index order. */
fun cosineRows(a: FloatArray, b: FloatArray, offset: Int, rows: Int, width: Int): DoubleArray =
    DoubleArray(rows) { r ->
        var ab = 0.0
        var aa = 0.0
        var bb = 0.0
        for (j in offset + r * width until offset + (r + 1) * width) {
            val x = a[j].toDouble()
            val y = b[j].toDouble()
            ab += x * y
            aa += x * x
            bb += y * y
        }
        ab / (maxOf(Math.sqrt(aa), COSINE_EPS) * maxOf(Math.sqrt(bb), COSINE_EPS))
    }

/**
 * LPL's similarity of consecutive velocities of `shape` (B, C, T, H, W). original: the row cosines of the
 * plane [0, 0, 0] (H rows of W, its first H * W elements), averaged in row order; full: one cosine over all.
 */
fun velocitySimilarity(prev: FloatArray, cur: FloatArray, shape: IntArray, mode: SimilarityMode): Double {
    if (mode == SimilarityMode.FULL) return cosineRows(prev, cur, 0, 1, cur.size)[0]
    require(shape.size == 5) { "the original LPL similarity needs velocities (B, C, T, H, W), got shape ${shape.toList()}" }
    val rows = cosineRows(prev, cur, 0, shape[3], shape[4])
    var sum = 0.0
    for (r in rows) sum += r
    return sum / rows.size
}

/**
 * On-device Sora's dynamic leap rule: from `minSteps` on, a similarity more than `tolerance` above the best
 * so far (which starts at 0) becomes the best and refills the patience; anything else spends one unit;
 * with patience spent, leap with the velocity just evaluated.
 */
class AutoLeap(private val cfg: LeapConfig, steps: Int) {
    val minSteps: Int = cfg.minSteps ?: defaultMinSteps(steps)
    val similarities = ArrayList<Double>() // one per step from step 1 on
    private var prev: FloatArray? = null
    private var best = 0.0
    private var left = cfg.patience

    fun shouldLeap(step: Int, v: FloatArray, shape: IntArray): Boolean {
        val last = prev
        prev = v
        if (last == null) return false
        return observe(step, velocitySimilarity(last, v, shape, cfg.similarity))
    }

    /** The rule on its own: record step's similarity (to the previous velocity) and say whether to leap. */
    fun observe(step: Int, similarity: Double): Boolean {
        similarities.add(similarity)
        if (step < minSteps) return false
        if (similarity > best + cfg.tolerance) {
            best = similarity
            left = cfg.patience
            return false
        }
        left -= 1
        return left <= 0
    }
}

/** The denoiser variant for a call: "denoiser" + "_tdtm" when merged + "_tome" with spatial ToMe. */
fun variantName(merged: Boolean, spatial: Boolean): String =
    "denoiser" + (if (merged) "_tdtm" else "") + (if (spatial) "_tome" else "")

/** One denoiser call as the sampler sees it: which step, at what time, with which variant. */
class StepInfo(val step: Int, val t: Float, val variant: String, val stepsDone: Int)

class SampleResult(
    val x: FloatArray,
    val calls: Int,
    val mergedCalls: Int,
    val leapAt: Int?,
    val similarities: List<Double>,
    val variants: List<String>,
)

/** Velocity for latent x at time t with the named variant; guidance and text states are the caller's. */
fun interface VelocityFn {
    fun velocity(variant: String, x: FloatArray, t: Float): FloatArray
}

/** Euler sampling from `noise` (t = 1) to t = 0. Step i runs merged (TDTM) when i < tdtmSteps. */
fun sample(velocity: VelocityFn, noise: FloatArray, shape: IntArray, cfg: SamplerConfig, onStep: ((StepInfo) -> Unit)? = null): SampleResult {
    val ts = timesteps(cfg.steps, cfg.shift, cfg.timesteps)
    var x = noise.copyOf()
    val auto = if (cfg.leap.mode == LeapMode.AUTO) AutoLeap(cfg.leap, cfg.steps) else null
    val variants = ArrayList<String>()
    var mergedCalls = 0
    var leapAt: Int? = null
    for (i in 0 until cfg.steps) {
        val merged = i < cfg.tdtmSteps
        val variant = variantName(merged, cfg.spatial)
        val v = velocity.velocity(variant, x, ts[i].toFloat())
        require(v.size == x.size) { "$variant returned ${v.size} values, expected ${x.size}" }
        variants.add(variant)
        if (merged) mergedCalls++
        var leap = cfg.leap.mode == LeapMode.FIXED && i == cfg.leap.step
        if (auto != null && auto.shouldLeap(i, v, shape)) leap = true
        val last = leap && i < cfg.steps - 1
        val dt = if (last) ts[i].toFloat() else (ts[i] - ts[i + 1]).toFloat() // a leap covers all remaining time
        x = FloatArray(x.size) { j -> x[j] - v[j] * dt }
        onStep?.invoke(StepInfo(i, ts[i].toFloat(), variant, if (last) cfg.steps else i + 1))
        if (last) {
            leapAt = i
            break
        }
    }
    return SampleResult(x, variants.size, mergedCalls, leapAt, auto?.similarities ?: emptyList(), variants)
}

/** Latent (1, 3, T, H, W) -> frames (T, H, W, 3), each clip(f32(f32(x + 1) / 2), 0, 1). */
fun framesFromLatent(x: FloatArray, shape: IntArray): FloatArray {
    require(shape.size == 5 && shape[0] == 1 && shape[1] == 3) { "frames need a latent (1, 3, T, H, W), got ${shape.toList()}" }
    val (t, h, w) = Triple(shape[2], shape[3], shape[4])
    val plane = t * h * w
    return FloatArray(plane * 3) { k ->
        val c = k % 3
        val pixel = k / 3 // (frame, row, column) in C order
        val value = (x[c * plane + pixel] + 1.0f) / 2.0f
        value.coerceIn(0.0f, 1.0f)
    }
}

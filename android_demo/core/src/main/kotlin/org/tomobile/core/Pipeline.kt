// Text -> video with any runtime behind two small interfaces: the app implements them with ExecuTorch
// (android_demo/app, ExecuTorchParts.kt), the tests with recorded outputs. Mirrors
// web_demo/core/pipeline.js and ios_demo TomobileCore/Pipeline.swift.
package org.tomobile.core

/** The exported text encoder: ids and mask (1, L) int64 -> states (1, L, D) float32, flattened. */
interface TextEncoder {
    fun encode(inputIds: LongArray, attentionMask: LongArray): FloatArray
}

/**
 * One exported denoiser per variant ("denoiser", "denoiser_tdtm", "denoiser_tome", "denoiser_tdtm_tome"),
 * inputs as in the manifest: x (1, C, T, H, W), t (1), states (1, L, D), mask (1, L) float32, guidance (1);
 * output: the guided velocity, shaped as x. Classifier-free guidance runs inside the graph.
 */
interface Denoiser {
    val variants: Set<String>

    fun run(variant: String, x: FloatArray, t: Float, states: FloatArray, mask: FloatArray, guidance: Float): FloatArray
}

/** What the screen shows besides the clip. */
class GenerationStats(
    val calls: Int,
    val mergedCalls: Int,
    val leapAt: Int?,
    val variants: List<String>,
    val callMillis: List<Double>,
    val encodeMillis: Double,
    val sampleMillis: Double,
)

/** frames: (T, H, W, 3) float32 in [0, 1], C order. */
class Generation(val frames: FloatArray, val result: SampleResult, val stats: GenerationStats)

class Pipeline(
    private val tokenizer: WordPieceTokenizer,
    private val textEncoder: TextEncoder,
    private val denoiser: Denoiser,
    val shape: IntArray,
    val captionLen: Int,
) {
    /** One clip for `prompt` and `seed` (the same noise as `tomobile generate --seed`). */
    fun generate(prompt: String, seed: ULong, cfg: SamplerConfig, onStep: ((StepInfo) -> Unit)? = null): Generation {
        val startEncode = System.nanoTime()
        val enc = tokenizer.encode(prompt, captionLen)
        val states = textEncoder.encode(enc.inputIds, enc.attentionMask)
        val mask = FloatArray(enc.attentionMask.size) { enc.attentionMask[it].toFloat() }
        val encodeMillis = (System.nanoTime() - startEncode) / 1e6
        val callMillis = ArrayList<Double>()
        val velocity = VelocityFn { variant, x, t ->
            if (variant !in denoiser.variants) {
                throw IllegalStateException("variant $variant is not in the export; it has: ${denoiser.variants.sorted().joinToString(", ")}")
            }
            val start = System.nanoTime()
            denoiser.run(variant, x, t, states, mask, cfg.guidance).also { callMillis.add((System.nanoTime() - start) / 1e6) }
        }
        val noise = latentNoise(shape, seed) // outside the timed region, as in Python
        val startSample = System.nanoTime()
        val result = sample(velocity, noise, shape, cfg, onStep)
        val sampleMillis = (System.nanoTime() - startSample) / 1e6
        val stats = GenerationStats(result.calls, result.mergedCalls, result.leapAt, result.variants, callMillis, encodeMillis, sampleMillis)
        return Generation(framesFromLatent(result.x, shape), result, stats)
    }
}

/** What the screen lets a person set, as typed; `toConfig` checks it and fills in the export's defaults. */
data class ScreenSettings(
    val prompt: String = "a red circle moving left",
    val seed: String = "0",
    val steps: String = "30",
    val lpl: String = "15", // off | N | auto
    val tdtmSteps: String = "15",
    val spatial: Boolean = false,
) {
    fun seedValue(): ULong = parseSeed(seed)

    /** Guidance, shift, timesteps and LPL similarity stay as the export was validated with. */
    fun toConfig(defaults: SamplerConfig): SamplerConfig {
        val n = steps.trim().toIntOrNull() ?: throw IllegalArgumentException("steps must be a whole number, got \"$steps\"")
        val tdtm = tdtmSteps.trim().toIntOrNull() ?: throw IllegalArgumentException("TDTM steps must be a whole number, got \"$tdtmSteps\"")
        return defaults.copy(steps = n, leap = LeapConfig.parse(lpl, defaults.leap.similarity), tdtmSteps = tdtm, spatial = spatial)
    }
}

/** Frame `index` of frames (T, H, W, 3) in [0, 1] as ARGB pixels, each channel round(f * 255). */
fun frameArgb(frames: FloatArray, shape: IntArray, index: Int): IntArray {
    val pixels = shape[3] * shape[4]
    val start = index * pixels * 3
    return IntArray(pixels) { p ->
        fun channel(c: Int) = (frames[start + p * 3 + c] * 255.0f + 0.5f).toInt().coerceIn(0, 255)
        (0xFF shl 24) or (channel(0) shl 16) or (channel(1) shl 8) or channel(2)
    }
}

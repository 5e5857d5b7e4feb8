package org.tomobile.core

import java.io.File
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class PipelineTest {
    private val tokenizer by lazy { WordPieceTokenizer.fromTokenizerJson(File(Fixtures.dir, "tokenizer.json").readText()) }
    private val shape = intArrayOf(1, 3, 2, 4, 4)

    /** Records what the pipeline hands the parts; the velocity is a fixed float32 function of x and t. */
    private class FakeParts(override val variants: Set<String>) : TextEncoder, Denoiser {
        var ids: LongArray? = null
        val masks = ArrayList<FloatArray>()
        val guidances = ArrayList<Float>()

        override fun encode(inputIds: LongArray, attentionMask: LongArray): FloatArray {
            ids = inputIds
            return FloatArray(inputIds.size * 3) { it.toFloat() }
        }

        override fun run(variant: String, x: FloatArray, t: Float, states: FloatArray, mask: FloatArray, guidance: Float): FloatArray {
            masks.add(mask)
            guidances.add(guidance)
            return FloatArray(x.size) { x[it] * 0.5f + t }
        }
    }

    @Test
    fun generateTokenizesEncodesAndSamplesFromTheSeedsNoise() {
        val parts = FakeParts(setOf("denoiser", "denoiser_tdtm"))
        val cfg = SamplerConfig(steps = 6, guidance = 7.5f, leap = LeapConfig.parse("3"), tdtmSteps = 2)
        val gen = Pipeline(tokenizer, parts, parts, shape, 16).generate("a red circle", 42uL, cfg)
        val enc = tokenizer.encode("a red circle", 16)
        assertArrayEquals(enc.inputIds, parts.ids)
        assertArrayEquals(FloatArray(16) { enc.attentionMask[it].toFloat() }, parts.masks.first())
        assertEquals(List(4) { 7.5f }, parts.guidances)
        val expected = sample({ _, x, t -> FloatArray(x.size) { x[it] * 0.5f + t } }, latentNoise(shape, 42uL), shape, cfg)
        assertEquals(digestFloat32(framesFromLatent(expected.x, shape)), digestFloat32(gen.frames))
        assertEquals(listOf("denoiser_tdtm", "denoiser_tdtm", "denoiser", "denoiser"), gen.stats.variants)
        assertEquals(3, gen.stats.leapAt)
        assertEquals(4, gen.stats.callMillis.size)
    }

    @Test
    fun aVariantTheExportLacksIsNamedWithThoseItHas() {
        val parts = FakeParts(setOf("denoiser"))
        val error = expectThrows<IllegalStateException> {
            Pipeline(tokenizer, parts, parts, shape, 16).generate("x", 0uL, SamplerConfig(steps = 2, spatial = true))
        }
        assertEquals("variant denoiser_tome is not in the export; it has: denoiser", error.message)
    }

    @Test
    fun screenSettingsBecomeTheSamplerConfig() {
        val defaults = SamplerConfig(guidance = 4.0f, shift = 2.0, leap = LeapConfig(similarity = SimilarityMode.FULL))
        val cfg = ScreenSettings(steps = " 20 ", lpl = "auto", tdtmSteps = "5", spatial = true).toConfig(defaults)
        assertEquals(SamplerConfig(steps = 20, leap = LeapConfig(LeapMode.AUTO, similarity = SimilarityMode.FULL), tdtmSteps = 5, spatial = true), cfg)
        val steps = expectThrows<IllegalArgumentException> { ScreenSettings(steps = "many").toConfig(defaults) }
        assertEquals("steps must be a whole number, got \"many\"", steps.message)
        expectThrows<IllegalArgumentException> { ScreenSettings(lpl = "30").toConfig(defaults) } // leap must be below steps
        expectThrows<IllegalArgumentException> { ScreenSettings(seed = "-1").seedValue() }
    }

    @Test
    fun framePixelsRoundLikeTheGifWriter() {
        // Python's save_clip: (f * 255 + 0.5).astype(uint8) on float32 frames.
        val frames = floatArrayOf(0f, 0.5f, 1f, 0.2f, 0.998f, 0.001f)
        val argb = frameArgb(frames, intArrayOf(1, 3, 1, 1, 2), 0)
        assertEquals(listOf(0xFF0080FF.toInt(), 0xFF33FE00.toInt()), argb.toList())
        assertTrue(argb.all { (it ushr 24) == 0xFF })
    }
}

package org.tomobile.core

import java.io.File
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class SamplerTest {
    private val fixture by lazy { Fixtures.json(File(Fixtures.dir, "sampler_cases.json")) }

    @Test
    fun timestepsEqualPythonForEveryCountShiftAndMode() {
        val cases = fixture.field("timesteps", "sampler_cases").asList("timesteps")
        assertTrue(cases.size >= 300)
        for (c in cases.map { it.asObject("timesteps case") }) {
            val steps = c["steps"].asInt("steps")
            val expected = c["values"].asDoubleArray("values")
            val actual = timesteps(steps, c["shift"].asDouble("shift"), TimestepMode.parse(c["mode"].asString("mode")))
            assertEquals(expected.map { it.toRawBits() }, actual.map { it.toRawBits() }, "$c")
        }
    }

    @Test
    fun autoLeapMinimumStepEqualsPython() {
        for ((steps, expected) in fixture.field("min_steps", "sampler_cases").asObject("min_steps")) {
            assertEquals(expected.asInt(steps), defaultMinSteps(steps.toInt()), "steps $steps")
        }
        assertEquals(14, defaultMinSteps(30)) // On-device Sora's step 14 of 30
    }

    @Test
    fun syntheticReplaysReproduceEveryInputAndTheFinalLatent() {
        val velocities = File(Fixtures.dir, "sampler_velocities.bin").readBytes()
        val cases = fixture.field("replay", "sampler_cases").asList("replay")
        assertTrue(cases.size >= 6)
        for (case in cases) assertReplay(case.asObject("replay case"), velocities)
    }

    @Test
    fun variantNamesFollowTheExport() {
        assertEquals("denoiser", variantName(merged = false, spatial = false))
        assertEquals("denoiser_tdtm", variantName(merged = true, spatial = false))
        assertEquals("denoiser_tome", variantName(merged = false, spatial = true))
        assertEquals("denoiser_tdtm_tome", variantName(merged = true, spatial = true))
    }

    @Test
    fun leapSettingsParseLikeTheCli() {
        assertEquals(LeapMode.OFF, LeapConfig.parse("off").mode)
        assertEquals(LeapMode.AUTO, LeapConfig.parse(" Auto ").mode)
        assertEquals(LeapConfig(LeapMode.FIXED, 15), LeapConfig.parse("15"))
        for (bad in listOf("0", "-3", "1.5", "", "sometimes")) {
            val error = expectThrows<IllegalArgumentException> { LeapConfig.parse(bad) }
            assertTrue(error.message!!.contains("allowed: off, auto"), error.message)
        }
        expectThrows<IllegalArgumentException> { SamplerConfig(steps = 10, leap = LeapConfig.parse("10")) }
        val last = expectThrows<IllegalArgumentException> { SamplerConfig(steps = 10, leap = LeapConfig.parse("9")) } // as Python refuses
        assertTrue(last.message!!.contains("1 <= N <= 8"), last.message)
        assertEquals(8, SamplerConfig(steps = 10, leap = LeapConfig.parse("8")).leap.step)
        expectThrows<IllegalArgumentException> { SamplerConfig(steps = 10, tdtmSteps = 11) }
        expectThrows<IllegalArgumentException> { SamplerConfig(guidance = Float.NaN) }
        expectThrows<IllegalArgumentException> { SamplerConfig(steps = 1001) }
        expectThrows<IllegalArgumentException> { TimestepMode.parse("linear") }
    }

    @Test
    fun framesAreChannelsLastAndClipped() {
        val shape = intArrayOf(1, 3, 1, 1, 2) // two pixels
        val x = floatArrayOf(-3f, 0f, 1f, 0.5f, -1f, 7f) // channel-major
        val frames = framesFromLatent(x, shape)
        assertEquals(listOf(0f, 1f, 0f, 0.5f, 0.75f, 1f), frames.toList())
    }

    @Test
    fun digestIsSha256OfLittleEndianFloat32() {
        // hashlib.sha256(struct.pack('<3f', 1.0, -2.5, 0.1)).hexdigest()
        assertEquals("2f9cc761bc2594fa578868daeedc59b0fc115513fae3e5dc09c4e86e50b8aaf6", digestFloat32(floatArrayOf(1f, -2.5f, 0.1f)))
    }
}

/** Runs the Kotlin sampler on a recorded replay (the contract's or a synthetic one) and checks every digest. */
fun assertReplay(case: Map<String, Any?>, velocities: ByteArray) {
    val name = case["name"].asString("name")
    val shape = case.field("shape", name).asIntArray("shape")
    val settings = case.field("settings", name).asObject("settings")
    val cfg = SamplerConfig(
        steps = settings["steps"].asInt("steps"),
        guidance = settings["guidance"].asDouble("guidance").toFloat(),
        shift = settings["shift"].asDouble("shift"),
        leap = LeapConfig.parse(settings["lpl"].asString("lpl"), SimilarityMode.parse(settings["lpl_similarity"].asString("lpl_similarity"))),
        tdtmSteps = settings["tdtm_steps"].asInt("tdtm_steps"),
        timesteps = TimestepMode.parse(settings["timesteps"].asString("timesteps")),
        spatial = settings["spatial"].asBoolean("spatial"),
    )
    val noise = latentNoise(shape, parseSeed(case["seed"].asString("seed")))
    assertEquals(case["noise_sha256"], digestFloat32(noise), "$name: noise")
    val calls = case.field("calls", name).asList("calls").map { it.asObject("call") }
    var n = 0
    val result = sample({ variant, x, t ->
        val call = calls.getOrNull(n) ?: throw AssertionError("$name: the sampler made more than ${calls.size} calls")
        assertEquals(call["variant"], variant, "$name call $n: variant")
        assertEquals(call["t_float32"].asDouble("t_float32").toFloat(), t, "$name call $n: t")
        assertEquals(call["input_sha256"], digestFloat32(x), "$name call $n: input latent")
        n++
        Fixtures.floats(velocities, call["output_offset"].asInt("output_offset"), x.size)
            .also { assertEquals(call["output_sha256"], digestFloat32(it), "$name call $n: recorded velocity") }
    }, noise, shape, cfg)
    assertEquals(calls.size, result.calls, "$name: calls")
    assertEquals((case["leap_at"] as Long?)?.toInt(), result.leapAt, "$name: leap step")
    assertEquals(case["merged_calls"].asInt("merged_calls"), result.mergedCalls, "$name: merged calls")
    val sims = case["similarities"].asDoubleArray("similarities")
    assertEquals(sims.map { it.toRawBits() }, result.similarities.map { it.toRawBits() }, "$name: LPL similarities")
    assertEquals(case["final_latent_sha256"], digestFloat32(result.x), "$name: final latent")
    if (shape[0] == 1 && shape[1] == 3) {
        assertEquals(case["frames_sha256"], digestFloat32(framesFromLatent(result.x, shape)), "$name: frames")
    }
}

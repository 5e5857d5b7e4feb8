// The Wan sampler's proof (docs/contract.md, "The Wan pipeline"): every section of a WanPipeline export's
// test_vectors/wan_contract.json but the tokenizer (UMT5's is not ported to Kotlin), files read through the
// manifest's sha256. Mirrors web_demo/test/wan.test.js and ios_demo ContractTests (WanContractTests).
package org.tomobile.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File

class WanContractTest {
    private val root by lazy { Json.parse(File(Fixtures.wanExport, "manifest.json").readText()).asObject("manifest.json") }
    private fun verified(relPath: String): File {
        val files = root.field("files", "manifest.json").asObject("files")
        return verifyFile(Fixtures.wanExport, relPath, files.field(relPath, "files").asString(relPath))
    }
    private val contract by lazy { Json.parse(verified("test_vectors/wan_contract.json").readText()).asObject("wan_contract.json") }
    private val replayBytes by lazy { verified("test_vectors/" + contract["replay_file"].asString("replay_file")).readBytes() }
    private val configs by lazy { contract.field("scheduler_configs", "contract").asObject("scheduler_configs") }

    private fun section(name: String): List<Map<String, Any?>> =
        contract.field(name, "wan_contract.json").asList(name).mapIndexed { i, e -> e.asObject("$name[$i]") }

    private fun config(name: Any?): Map<String, Any?> = configs.field(name.asString("scheduler"), "scheduler_configs").asObject("config")

    @Test
    fun isVersionOneAndItsReplayFileIsTheOneDescribed() = assertContractHeader(contract, replayBytes)

    @Test
    fun everyScheduleIsTheRecordedBits() {
        val entries = section("schedules")
        assertTrue(entries.size >= 40 && entries.map { it["kind"] }.toSet() == setOf(EULER, UNIPC))
        for (e in entries) {
            val s = flowSchedule(config(e["name"]), e["steps"].asInt("steps"))
            val where = "${e["name"]}, ${e["steps"]} steps"
            assertEquals(e["kind"], s.kind, where)
            assertEquals(e["sigmas"].asDoubleArray("sigmas").map { it.toRawBits() }, s.sigmas.map { it.toDouble().toRawBits() }, where)
            assertEquals(e["timesteps"].asDoubleArray("timesteps").map { it.toRawBits() }, s.timesteps.map { it.toRawBits() }, where)
            assertEquals(e["order"].asInt("order"), s.order, where)
        }
    }

    @Test
    fun otherSchedulersAndOptionsAreRefused() {
        expectThrows<IllegalArgumentException> { flowSchedule(mapOf("_class_name" to "DDIMScheduler"), 4) }
        expectThrows<IllegalArgumentException> { flowSchedule(config("euler_shift3") + ("use_karras_sigmas" to true), 4) }
        expectThrows<IllegalArgumentException> { flowSchedule(config("unipc_shift3_order2") + ("prediction_type" to "epsilon"), 4) }
        expectThrows<IllegalArgumentException> { FlowConfig(flowSchedule(config("euler_shift3"), 4), leap = LeapConfig.parse("3")) }
    }

    @Test
    fun promptCleaningGivesTheRecordedText() {
        val cases = section("prompt_clean")
        assertTrue(cases.size >= 10)
        for (c in cases) assertEquals(c["clean"], promptClean(c["text"].asString("text")), "${c["text"]}")
    }

    @Test
    fun unscalingGivesTheRecordedLatent() {
        val s = contract.field("scaling", "contract").asObject("scaling")
        val shape = s["shape"].asIntArray("shape")
        val x = latentNoise(shape, parseSeed(s["seed"].asString("seed")))
        assertEquals(s["input_sha256"], digestFloat32(x))
        val out = unscaleLatents(x, shape, s["latents_mean"].asDoubleArray("mean"), s["latents_std"].asDoubleArray("std"))
        assertEquals(s["output_sha256"], digestFloat32(out))
        assertNotEquals(s["input_sha256"], s["output_sha256"])
    }

    @Test
    fun replaysReproduceEveryInputDigestAndTheFinalLatent() {
        val replays = section("replay")
        assertTrue(replays.map { config(it["scheduler"])["_class_name"] }.toSet() == setOf(EULER, UNIPC))
        for (replay in replays) assertWanReplay(replay)
    }

    private fun assertWanReplay(replay: Map<String, Any?>) {
        val name = replay["name"].asString("name")
        val shape = replay["shape"].asIntArray("shape")
        val noise = latentNoise(shape, parseSeed(replay["seed"].asString("seed")))
        assertEquals(replay["noise_sha256"], digestFloat32(noise), "$name: noise")
        val schedule = flowSchedule(config(replay["scheduler"]), replay["steps"].asInt("steps"))
        val cfg = FlowConfig(schedule, replay["guidance"].asDouble("guidance"), LeapConfig.parse(replay["lpl"].asString("lpl")),
            replay["tdtm_steps"].asInt("tdtm_steps"))
        val calls = replay.field("calls", name).asList("calls").map { it.asObject("call") }
        var n = 0
        val result = sampleFlow({ x, t, prompt, part, step ->
            val call = calls.getOrNull(n) ?: throw AssertionError("$name: more than ${calls.size} calls")
            val where = "$name call $n"
            assertEquals(listOf(call["step"].asInt("step"), call["timestep"].asDouble("timestep").toFloat(), call["branch"], call["part"]),
                listOf(step, t, prompt, part), where)
            assertEquals(call["input_sha256"], digestFloat32(x), "$where: input latent")
            n++
            Fixtures.floats(replayBytes, call["output_offset"].asInt("output_offset"), x.size)
        }, noise, shape, cfg)
        assertEquals(calls.size, result.calls, "$name: calls")
        assertEquals((replay["leap_at"] as Long?)?.toInt(), result.leapAt, "$name: leap step")
        assertEquals(replay["merged_steps"].asInt("merged_steps"), result.mergedSteps, "$name: TDTM steps")
        val sims = replay["similarities"].asDoubleArray("similarities")
        assertEquals(sims.map { it.toRawBits() }, result.similarities.map { it.toRawBits() }, "$name: LPL similarities")
        assertEquals(replay["final_latent_sha256"], digestFloat32(result.x), "$name: final latent")
    }
}

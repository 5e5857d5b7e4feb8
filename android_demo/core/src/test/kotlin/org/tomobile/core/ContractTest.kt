// The port's proof (docs/contract.md, "Checking a port"): every section of the export's
// test_vectors/contract.json, files read through the manifest with their sha256 checked.
package org.tomobile.core

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class ContractTest {
    private val manifest by lazy { readManifest(Fixtures.export) }
    private val contract by lazy { Json.parse(manifest.verified("test_vectors/contract.json").readText()).asObject("contract.json") }
    private val replayBytes by lazy { manifest.verified("test_vectors/" + contract["replay_file"].asString("replay_file")).readBytes() }

    private fun section(name: String): List<Map<String, Any?>> =
        contract.field(name, "contract.json").asList(name).mapIndexed { i, e -> e.asObject("$name[$i]") }

    @Test
    fun isVersionOneAndItsReplayFileIsTheOneDescribed() = assertContractHeader(contract, replayBytes)

    @Test
    fun generatorGivesTheRecordedNormalsAndLatents() {
        val noise = section("noise")
        assertTrue(noise.size >= 5)
        for (entry in noise) {
            val seed = parseSeed(entry["seed"].asString("seed"))
            val expected = entry["values"].asDoubleArray("values")
            val actual = standardNormals(seed, expected.size)
            assertEquals(expected.map { it.toRawBits() }, actual.map { it.toRawBits() }, "seed $seed")
        }
        for (entry in section("latent_noise")) {
            val seed = parseSeed(entry["seed"].asString("seed"))
            assertEquals(entry["sha256"], digestFloat32(latentNoise(entry["shape"].asIntArray("shape"), seed)), "latent of seed $seed")
        }
    }

    @Test
    fun tokenizerGivesTheRecordedIdsOnEveryCase() {
        val tokenizer = WordPieceTokenizer.fromTokenizerJson(manifest.verified("tokenizer.json").readText())
        val section = contract.field("tokenizer", "contract.json").asObject("tokenizer")
        val length = section["caption_len"].asInt("caption_len")
        assertEquals(manifest.captionLen, length)
        val cases = section["cases"].asList("cases").map { it.asObject("case") }
        assertTrue(cases.size >= 20)
        for (case in cases) {
            val enc = tokenizer.encode(case["text"].asString("text"), length)
            assertEquals(case["input_ids"].asLongArray("input_ids").toList(), enc.inputIds.toList(), "ids of ${case["text"]}")
            assertEquals(case["attention_mask"].asLongArray("mask").toList(), enc.attentionMask.toList(), "mask of ${case["text"]}")
        }
    }

    @Test
    fun timestepsAreTheRecordedDoubles() {
        val cases = section("timesteps")
        assertTrue(cases.map { it["mode"] }.toSet() == setOf("discrete", "continuous"))
        for (c in cases) {
            val actual = timesteps(c["steps"].asInt("steps"), c["shift"].asDouble("shift"), TimestepMode.parse(c["mode"].asString("mode")))
            assertEquals(c["values"].asDoubleArray("values").map { it.toRawBits() }, actual.map { it.toRawBits() }, "$c")
        }
    }

    @Test
    fun autoLeapDecidesAsRecordedOnEverySimilaritySequence() {
        val auto = section("lpl").filter { it["mode"] == "auto" }
        assertTrue(auto.any { it["name"].asString("name").startsWith("synthetic:") })
        for (e in auto) {
            val steps = e["steps"].asInt("steps")
            assertEquals(e["min_steps"].asInt("min_steps"), defaultMinSteps(steps), "${e["name"]}: min steps")
            val rule = AutoLeap(LeapConfig(LeapMode.AUTO, tolerance = e["tolerance"].asDouble("tolerance"), patience = e["patience"].asInt("patience")), steps)
            val sims = e["similarities"].asDoubleArray("similarities")
            var leapAt: Int? = null
            for ((j, sim) in sims.withIndex()) {
                if (rule.observe(j + 1, sim) && j + 1 < steps - 1) {
                    leapAt = j + 1
                    break
                }
            }
            assertEquals((e["leap_at"] as Long?)?.toInt(), leapAt, "${e["name"]}")
        }
    }

    @Test
    fun similaritiesOfTheRecordedVelocitiesAreTheRecordedDoubles() {
        val recorded = section("lpl").filter { (it["name"] as String).startsWith("recorded:") }
        assertTrue(recorded.map { it["similarity"] }.toSet() == setOf("original", "full"))
        val replays = section("replay").associateBy { it["name"] }
        for (e in recorded) {
            val replay = replays.getValue(e["replay"])
            val shape = replay["shape"].asIntArray("shape")
            val count = shape.fold(1) { a, b -> a * b }
            val velocities = replay["calls"].asList("calls").map { Fixtures.floats(replayBytes, it.asObject("call")["output_offset"].asInt("offset"), count) }
            val mode = SimilarityMode.parse(e["similarity"].asString("similarity"))
            val actual = velocities.zipWithNext { a, b -> velocitySimilarity(a, b, shape, mode) }
            assertEquals(e["similarities"].asDoubleArray("similarities").map { it.toRawBits() }, actual.map { it.toRawBits() }, "${e["name"]}")
        }
    }

    @Test
    fun fixedLeapsAndTdtmSchedulesAreTheRecordedOnes() {
        val shape = intArrayOf(1, 1, 1, 2, 2)
        fun run(steps: Int, tdtm: Int, lpl: String, spatial: Boolean): SampleResult =
            sample({ _, x, _ -> FloatArray(x.size) { 1f } }, FloatArray(4), shape,
                SamplerConfig(steps = steps, leap = LeapConfig.parse(lpl), tdtmSteps = tdtm, spatial = spatial))
        for (e in section("lpl").filter { it["mode"] == "fixed" }) {
            val result = run(e["steps"].asInt("steps"), 0, e["step"].asInt("step").toString(), false)
            assertEquals((e["leap_at"] as Long?)?.toInt(), result.leapAt, "${e["name"]}")
        }
        val tdtm = section("tdtm")
        assertTrue(tdtm.size >= 3)
        for (e in tdtm) {
            val result = run(e["steps"].asInt("steps"), e["tdtm_steps"].asInt("tdtm_steps"), e["lpl"].asString("lpl"), e["spatial"].asBoolean("spatial"))
            assertEquals(e["variants"].asList("variants"), result.variants, "$e")
            assertEquals(e["merged"].asList("merged"), result.variants.map { it.contains("_tdtm") }, "$e")
            assertEquals((e["leap_at"] as Long?)?.toInt(), result.leapAt, "$e")
        }
    }

    @Test
    fun replaysReproduceEveryInputDigestAndTheFinalFrames() {
        val replays = section("replay")
        assertTrue(replays.size >= 2)
        assertTrue(replays.any { it.field("settings", "replay").asObject("settings")["lpl"] == "auto" })
        for (replay in replays) {
            assertEquals(manifest.shape.toList(), replay["shape"].asIntArray("shape").toList())
            assertReplay(replay, replayBytes)
        }
    }
}

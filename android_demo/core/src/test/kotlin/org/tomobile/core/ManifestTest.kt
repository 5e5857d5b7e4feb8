package org.tomobile.core

import java.io.File
import java.nio.file.Files
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class ManifestTest {
    @Test
    fun readsTheRealExportAndVerifiesEveryListedFile() {
        val m = readManifest(Fixtures.export)
        assertEquals("video-dit-tiny", m.model)
        assertEquals(listOf(1, 3, 8, 32, 32), m.shape.toList())
        assertEquals(16, m.captionLen)
        assertEquals(384, m.captionDim)
        assertEquals(listOf("x", "t", "states", "mask", "guidance"), m.denoiserInputs)
        assertEquals(SamplerConfig(steps = 30, guidance = 4.0f, shift = 2.0, leap = LeapConfig.parse("15"), tdtmSteps = 15), m.defaults)
        assertEquals(setOf("text_encoder", "denoiser", "denoiser_tdtm", "denoiser_tome", "denoiser_tdtm_tome"), m.partsFor("onnx").keys)
        assertTrue("tokenizer.json" in m.files)
        for (path in m.files.keys) assertEquals(m.files[path], sha256Path(m.verified(path)), path)
        val error = expectThrows<ManifestException> { m.partsFor("tflite") }
        assertTrue(error.message!!.contains("--format tflite"), error.message)
    }

    @Test
    fun refusesMissingAlteredAndUnlistedFilesByName() {
        val dir = Files.createTempDirectory("tomobile-manifest").toFile()
        try {
            File(dir, "tokenizer.json").writeText("{}")
            File(dir, "denoiser.pte").writeBytes(byteArrayOf(1, 2, 3))
            val good = sha256Hex(byteArrayOf(1, 2, 3))
            File(dir, "manifest.json").writeText(fakeManifest(good))
            val m = readManifest(dir)
            assertEquals(dir, m.verified("denoiser.pte").parentFile)

            File(dir, "denoiser.pte").writeBytes(byteArrayOf(1, 2, 4))
            val altered = expectThrows<ManifestException> { m.verified("denoiser.pte") }
            assertTrue(altered.message!!.startsWith("denoiser.pte was altered"), altered.message)

            File(dir, "denoiser.pte").delete()
            val missing = expectThrows<ManifestException> { m.verified("denoiser.pte") }
            assertTrue(missing.message!!.startsWith("denoiser.pte is missing"), missing.message)

            val unlisted = expectThrows<ManifestException> { m.verified("extra.bin") }
            assertTrue(unlisted.message!!.startsWith("extra.bin is not listed"), unlisted.message)
        } finally {
            dir.deleteRecursively()
        }
    }

    @Test
    fun foldersHashAsTheExporterHashesAnMlpackage() {
        val expected = Fixtures.json(File(Fixtures.dir, "folder_digest.json"))
        val folder = File(Fixtures.dir, expected["folder"].asString("folder"))
        assertEquals(expected["sha256"], sha256Path(folder))
        assertEquals(expected["file_sha256"], sha256Path(File(folder, "a/b")))
    }

    @Test
    fun explainsAMissingOrBrokenManifest() {
        val dir = Files.createTempDirectory("tomobile-manifest").toFile()
        try {
            val none = expectThrows<ManifestException> { readManifest(dir) }
            assertTrue(none.message!!.contains("manifest.json not found"), none.message)
            File(dir, "manifest.json").writeText("{\"model\": \"x\",")
            val broken = expectThrows<ManifestException> { readManifest(dir) }
            assertTrue(broken.message!!.contains("not valid"), broken.message)
            File(dir, "manifest.json").writeText("{\"model\": \"x\"}")
            val incomplete = expectThrows<ManifestException> { readManifest(dir) }
            assertTrue(incomplete.message!!.contains("missing \"model_config\""), incomplete.message)
        } finally {
            dir.deleteRecursively()
        }
    }

    @Test
    fun followsTheSharedWeightsLayout() {
        // A weight group (docs/shared_weights.md): two ExecuTorch parts in one program, a method each;
        // two ONNX graphs reading one external data file, which is verified like every listed file.
        val dir = Files.createTempDirectory("tomobile-manifest").toFile()
        try {
            File(dir, "tokenizer.json").writeText("{}")
            for (name in listOf("denoiser.pte", "denoiser.onnx", "denoiser_tdtm.onnx", "denoiser.onnx.data")) File(dir, name).writeBytes(name.toByteArray())
            fun sha(name: String) = sha256Hex(name.toByteArray())
            val weights = """{"path": "denoiser.onnx.data", "sha256": "${sha("denoiser.onnx.data")}"}"""
            File(dir, "manifest.json").writeText(fakeManifest(sha("denoiser.pte"), """
                {"format": "executorch", "part": "denoiser_tdtm", "path": "denoiser.pte", "sha256": "${sha("denoiser.pte")}", "method": "denoiser_tdtm"},
                {"format": "onnx", "part": "denoiser", "path": "denoiser.onnx", "sha256": "${sha("denoiser.onnx")}", "weights": $weights},
                {"format": "onnx", "part": "denoiser_tdtm", "path": "denoiser_tdtm.onnx", "sha256": "${sha("denoiser_tdtm.onnx")}", "weights": $weights}
            """, method = "denoiser"))
            val m = readManifest(dir)
            assertEquals(mapOf("denoiser" to PartFile("denoiser.pte", method = "denoiser"), "denoiser_tdtm" to PartFile("denoiser.pte", method = "denoiser_tdtm")),
                m.partsFor("executorch"))
            assertEquals(listOf("denoiser", "denoiser_tdtm"), m.partsFor("executorch").values.map { it.methodName })
            assertEquals(setOf("denoiser.onnx.data"), m.partsFor("onnx").values.map { it.weights }.toSet())
            for (path in m.files.keys) m.verified(path)
            File(dir, "denoiser.onnx.data").writeBytes(byteArrayOf(0))
            val altered = expectThrows<ManifestException> { m.verified("denoiser.onnx.data") }
            assertTrue(altered.message!!.startsWith("denoiser.onnx.data was altered"), altered.message)
            assertEquals("forward", PartFile("text_encoder.pte").methodName)
        } finally {
            dir.deleteRecursively()
        }
    }

    private fun fakeManifest(sha: String, more: String = "", method: String? = null) = """
        {"model": "video-dit-tiny",
         "model_config": {"frames": 8, "size": 32, "channels": 3, "caption_len": 16, "caption_dim": 384},
         "io": {"denoiser_inputs": ["x", "t", "states", "mask", "guidance"]},
         "sampler": {"steps": 30, "guidance": 4.0, "shift": 2.0, "lpl_step": 15, "tdtm_steps": 15,
                     "timesteps": "discrete", "lpl_similarity": "original"},
         "artifacts": [{"format": "executorch", "part": "denoiser", "path": "denoiser.pte", "sha256": "$sha"${if (method != null) ", \"method\": \"$method\"" else ""}}${if (more.isBlank()) "" else ",$more"}],
         "files": {"tokenizer.json": "${sha256Hex("{}".toByteArray())}"}}
    """.trimIndent()
}

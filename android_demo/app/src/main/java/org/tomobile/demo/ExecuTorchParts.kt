// The ExecuTorch glue: the export's .pte parts behind :core's TextEncoder and Denoiser interfaces.
// Imports only ExecuTorch, :core and java.*, so that `make test-android` compiles it on a plain JVM
// against android_demo/stubs/ (signature stubs of the pinned executorch-android API); on a phone it
// runs on the real AAR.
package org.tomobile.demo

import java.io.Closeable
import java.io.File
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import org.tomobile.core.Denoiser
import org.tomobile.core.Manifest
import org.tomobile.core.ManifestException
import org.tomobile.core.PartFile
import org.tomobile.core.Pipeline
import org.tomobile.core.TextEncoder
import org.tomobile.core.WordPieceTokenizer
import org.tomobile.core.readManifest
import org.tomobile.core.verified

/** The input order tomobile's denoiser graphs take (manifest io.denoiser_inputs). */
private val DENOISER_INPUTS = listOf("x", "t", "states", "mask", "guidance")

/**
 * Every ExecuTorch part of one export folder. A part is checked against the manifest's sha256 and
 * loaded (memory-mapped) on first use; the text encoder, used once per clip and the largest part, is
 * released right after encoding, the denoiser variants stay loaded until [close]. The denoiser
 * variants share one program (a weight group, docs/shared_weights.md): one Module per file, and each
 * variant loads and runs its own method ([PartFile.methodName]) in it.
 */
class ExecuTorchParts(private val manifest: Manifest, private val numThreads: Int = 0) : TextEncoder, Denoiser, Closeable {
    private val paths: Map<String, PartFile> = manifest.partsFor("executorch")
    private val loaded = HashMap<String, Module>() // by file: the variants of a weight group share one
    private val methods = HashSet<PartFile>() // the parts whose method is loaded in its module
    private val xShape = LongArray(manifest.shape.size) { manifest.shape[it].toLong() }
    private val one = longArrayOf(1)

    override val variants: Set<String> = paths.keys.filter { it.startsWith("denoiser") }.toSet()

    init {
        if (manifest.denoiserInputs != DENOISER_INPUTS) {
            throw ManifestException("the denoiser takes ${manifest.denoiserInputs}; this app feeds $DENOISER_INPUTS")
        }
        if ("text_encoder" !in paths || "denoiser" !in variants) {
            throw ManifestException("the export needs text_encoder.pte and denoiser.pte; it has ${paths.values.map { it.path }.distinct().joinToString(", ")}")
        }
    }

    /** The artifact of `part`: its file and its method. */
    private fun file(part: String): PartFile =
        paths[part] ?: throw ManifestException("$part is not in this export; it has ${paths.keys.joinToString(", ")}")

    /** The module holding `part`, verified and loaded with mmap on first use, with the part's method
     * loaded (its plan built; XNNPACK packs its weights then). */
    @Synchronized
    fun module(part: String): Module {
        val f = file(part)
        val module = loaded.getOrPut(f.path) { Module.load(manifest.verified(f.path).absolutePath, Module.LOAD_MODE_MMAP, numThreads) }
        if (methods.add(f)) module.loadMethod(f.methodName)
        return module
    }

    /** Frees one part's native memory, with its file's other parts (loaded again on next use). */
    @Synchronized
    fun release(part: String) {
        val path = file(part).path
        loaded.remove(path)?.destroy()
        methods.removeAll { it.path == path }
    }

    override fun encode(inputIds: LongArray, attentionMask: LongArray): FloatArray {
        val shape = longArrayOf(1, inputIds.size.toLong())
        val out = module("text_encoder").execute(file("text_encoder").methodName,
            EValue.from(Tensor.fromBlob(inputIds, shape)), EValue.from(Tensor.fromBlob(attentionMask, shape)))
        release("text_encoder")
        return out[0].toTensor().dataAsFloatArray // (1, L, D)
    }

    override fun run(variant: String, x: FloatArray, t: Float, states: FloatArray, mask: FloatArray, guidance: Float): FloatArray {
        val statesShape = longArrayOf(1, manifest.captionLen.toLong(), manifest.captionDim.toLong())
        val out = module(variant).execute(file(variant).methodName,
            EValue.from(Tensor.fromBlob(x, xShape)),
            EValue.from(Tensor.fromBlob(floatArrayOf(t), one)),
            EValue.from(Tensor.fromBlob(states, statesShape)),
            EValue.from(Tensor.fromBlob(mask, longArrayOf(1, manifest.captionLen.toLong()))),
            EValue.from(Tensor.fromBlob(floatArrayOf(guidance), one)),
        )
        return out[0].toTensor().dataAsFloatArray // velocity, shaped as x
    }

    /** Loads every denoiser variant now (so the first clip's timings do not include loading). */
    fun preload() {
        for (variant in variants) module(variant)
    }

    @Synchronized
    override fun close() {
        for (module in loaded.values) module.destroy()
        loaded.clear()
        methods.clear()
    }
}

/** An export folder ready to generate: its manifest, the pipeline, and the loaded parts (close them). */
class LoadedExport(val manifest: Manifest, val pipeline: Pipeline, val parts: ExecuTorchParts) : Closeable by parts

/** Reads the manifest, checks and reads tokenizer.json, and wraps the ExecuTorch parts (loaded on use). */
fun loadExport(folder: File, numThreads: Int = 0): LoadedExport {
    val manifest = readManifest(folder)
    val tokenizer = WordPieceTokenizer.fromTokenizerJson(manifest.verified("tokenizer.json").readText())
    val parts = ExecuTorchParts(manifest, numThreads)
    return LoadedExport(manifest, Pipeline(tokenizer, parts, parts, manifest.shape, manifest.captionLen), parts)
}

// The export folder's manifest.json: which files the app loads, their sha256, the model's shapes and the
// sampler's defaults. Every file is checked before use, and a missing or altered one is refused with an
// error that names it. Mirrors web_demo/core/manifest.js and ios_demo TomobileCore/Manifest.swift.
package org.tomobile.core

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.security.MessageDigest

class ManifestException(message: String) : Exception(message)

/**
 * One part's artifact in one format. Parts that share their weights (a weight group: the denoiser
 * variants, docs/shared_weights.md) share one file: an ExecuTorch program with a [method] per part,
 * a multifunction Core ML package with a [function] per part, or ONNX graphs that read one [weights]
 * file (external data). Null where the part has the file to itself.
 */
data class PartFile(val path: String, val method: String? = null, val function: String? = null, val weights: String? = null) {
    /** The method to load and run: the part's own in a shared program, else "forward". */
    val methodName: String get() = method ?: "forward"
}

/** What the app reads from manifest.json. `files`: every listed file (relative path -> sha256). */
class Manifest(
    val folder: File,
    val model: String,
    val shape: IntArray, // (1, C, T, H, W)
    val captionLen: Int,
    val captionDim: Int, // width of the text encoder's states (1, captionLen, captionDim)
    val denoiserInputs: List<String>, // the order the denoiser graphs take their inputs in
    val defaults: SamplerConfig,
    val files: Map<String, String>,
    /** Model parts by format: format ("onnx", "executorch", "coreml") -> part name -> its artifact. */
    val parts: Map<String, Map<String, PartFile>>,
) {
    /** The part files of one format, or an error listing the formats this export has. */
    fun partsFor(format: String): Map<String, PartFile> =
        parts[format] ?: throw ManifestException("this export has no $format files; it has: ${parts.keys.joinToString(", ")}; export with --format $format")
}

private const val MANIFEST = "manifest.json"

/** Reads `folder`/manifest.json, written by `tomobile export video-dit-tiny`. */
fun readManifest(folder: File): Manifest {
    val file = File(folder, MANIFEST)
    if (!file.isFile) throw ManifestException("$MANIFEST not found in $folder; copy the whole folder written by `tomobile export video-dit-tiny --out DIR`")
    val root = try {
        Json.parse(file.readText()).asObject(MANIFEST)
    } catch (e: JsonException) {
        throw ManifestException("$MANIFEST in $folder is not valid: ${e.message}")
    }
    try {
        val mc = root.field("model_config", MANIFEST).asObject("model_config")
        val size = mc.field("size", "model_config").asInt("model_config.size")
        val shape = intArrayOf(1, mc.field("channels", "model_config").asInt("channels"), mc.field("frames", "model_config").asInt("frames"), size, size)
        val files = LinkedHashMap<String, String>()
        val parts = LinkedHashMap<String, LinkedHashMap<String, PartFile>>()
        for ((i, a) in root.field("artifacts", MANIFEST).asList("artifacts").withIndex()) {
            val art = a.asObject("artifacts[$i]")
            val path = art.field("path", "artifacts[$i]").asString("artifacts[$i].path")
            files[path] = art.field("sha256", "artifacts[$i]").asString("artifacts[$i].sha256")
            if (art.containsKey("companion_of")) continue // an int8 copy for the browser; the apps run the fp32 file
            val weights = art["weights"]?.asObject("artifacts[$i].weights")
            val weightsPath = weights?.field("path", "artifacts[$i].weights")?.asString("artifacts[$i].weights.path")
            if (weights != null) files[weightsPath!!] = weights.field("sha256", "artifacts[$i].weights").asString("artifacts[$i].weights.sha256")
            val format = art.field("format", "artifacts[$i]").asString("artifacts[$i].format")
            parts.getOrPut(format) { LinkedHashMap() }[art.field("part", "artifacts[$i]").asString("part")] =
                PartFile(path, art["method"]?.asString("artifacts[$i].method"), art["function"]?.asString("artifacts[$i].function"), weightsPath)
        }
        for ((path, sha) in root.field("files", MANIFEST).asObject("files")) files[path] = sha.asString("files.$path")
        val inputs = root.field("io", MANIFEST).asObject("io").field("denoiser_inputs", "io").asList("io.denoiser_inputs")
        return Manifest(folder, root.field("model", MANIFEST).asString("model"), shape,
            mc.field("caption_len", "model_config").asInt("caption_len"), mc.field("caption_dim", "model_config").asInt("caption_dim"),
            inputs.map { it.asString("io.denoiser_inputs") }, samplerDefaults(root), files, parts)
    } catch (e: JsonException) {
        throw ManifestException("$MANIFEST in $folder: ${e.message}")
    }
}

/** The sampler settings the export was validated with (steps, guidance, shift, LPL, TDTM, timesteps). */
private fun samplerDefaults(root: Map<String, Any?>): SamplerConfig {
    val s = root.field("sampler", MANIFEST).asObject("sampler")
    val similarity = SimilarityMode.parse(s["lpl_similarity"] as? String ?: "original")
    val lplStep = s["lpl_step"] as? Long
    return SamplerConfig(
        steps = s.field("steps", "sampler").asInt("sampler.steps"),
        guidance = s.field("guidance", "sampler").asDouble("sampler.guidance").toFloat(),
        shift = s.field("shift", "sampler").asDouble("sampler.shift"),
        leap = if (lplStep != null) LeapConfig(LeapMode.FIXED, lplStep.toInt(), similarity = similarity) else LeapConfig(similarity = similarity),
        tdtmSteps = (s["tdtm_steps"] as? Long)?.toInt() ?: 0,
        timesteps = TimestepMode.parse(s["timesteps"] as? String ?: "discrete"),
    )
}

fun sha256Hex(bytes: ByteArray): String = hex(MessageDigest.getInstance("SHA-256").digest(bytes))

/**
 * sha256 of a file, read in 1 MiB chunks, or of a folder (a Core ML .mlpackage) as the manifest hashes
 * it (export/pipeline.py sha256_path): for each file, sorted by path components, its relative path
 * ("/"-separated, UTF-8) and then its contents.
 */
fun sha256Path(path: File): String {
    val md = MessageDigest.getInstance("SHA-256")
    if (path.isDirectory) {
        val files = path.walkTopDown().filter { it.isFile }.map { it.relativeTo(path).invariantSeparatorsPath }.toList()
        for (rel in files.sortedWith(::comparePathParts)) {
            md.update(rel.toByteArray(Charsets.UTF_8))
            updateWithFile(md, File(path, rel))
        }
    } else {
        updateWithFile(md, path)
    }
    return hex(md.digest())
}

/** Python's order of paths: component by component ("a/b" before "a-b/c"), not as plain strings. */
private fun comparePathParts(a: String, b: String): Int {
    val pa = a.split('/')
    val pb = b.split('/')
    for (i in 0 until minOf(pa.size, pb.size)) {
        val c = pa[i].compareTo(pb[i])
        if (c != 0) return c
    }
    return pa.size - pb.size
}

private fun updateWithFile(md: MessageDigest, file: File) {
    file.inputStream().use { input ->
        val buffer = ByteArray(1 shl 20)
        while (true) {
            val n = input.read(buffer)
            if (n < 0) break
            md.update(buffer, 0, n)
        }
    }
}

private fun hex(digest: ByteArray): String = digest.joinToString("") { "%02x".format(it.toInt() and 0xff) }

/** `folder`/`relPath` (a file or an .mlpackage folder) after checking its sha256; a missing or altered one is an error naming it. */
fun verifyFile(folder: File, relPath: String, expectedSha256: String): File {
    val file = File(folder, relPath)
    if (!file.exists()) throw ManifestException("$relPath is missing from $folder (the manifest lists it); copy the whole export folder")
    val actual = sha256Path(file)
    if (!actual.equals(expectedSha256, ignoreCase = true)) {
        throw ManifestException("$relPath was altered: its sha256 is $actual, the manifest says $expectedSha256; export it again")
    }
    return file
}

/** Checks one file the manifest lists (an unlisted file is refused too: nothing unchecked is loaded). */
fun Manifest.verified(relPath: String): File {
    val sha = files[relPath] ?: throw ManifestException("$relPath is not listed in $MANIFEST; listed: ${files.keys.joinToString(", ")}")
    return verifyFile(folder, relPath, sha)
}

/** The contract's digest: lowercase hex sha256 of the float32 little-endian bytes in C order. */
fun digestFloat32(array: FloatArray): String {
    val buffer = ByteBuffer.allocate(array.size * 4).order(ByteOrder.LITTLE_ENDIAN)
    buffer.asFloatBuffer().put(array)
    return sha256Hex(buffer.array())
}

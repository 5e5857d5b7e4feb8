// Where the tests find what the Python reference wrote at test time: the fixtures folder
// (android_demo/tools/python_fixtures.py), an export folder with test_vectors/contract.json and a WanPipeline
// export folder with test_vectors/wan_contract.json.
// Both are passed as system properties by android_demo/tools/test_core.sh; a missing one fails the tests.
package org.tomobile.core

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

object Fixtures {
    val dir: File by lazy { folder("tomobile.fixtures", "python_fixtures.py OUT_DIR") }
    val export: File by lazy { folder("tomobile.export", "tomobile export video-dit-tiny --format onnx --out DIR") }
    val wanExport: File by lazy { folder("tomobile.wanExport", "tomobile export PIPELINE_DIR --size HxW --frames N --format onnx --out DIR") }

    private fun folder(property: String, how: String): File {
        val path = System.getProperty(property) ?: error("system property $property is not set; run android_demo/tools/test_core.sh")
        return File(path).also { check(it.isDirectory) { "$property=$path is not a folder; make it with `$how`" } }
    }

    fun json(file: File): Map<String, Any?> = Json.parse(file.readText()).asObject(file.name)

    fun doubles(file: File, offset: Long, count: Int): DoubleArray {
        val buffer = ByteBuffer.wrap(file.readBytes(), offset.toInt(), count * 8).order(ByteOrder.LITTLE_ENDIAN)
        return DoubleArray(count) { buffer.getDouble() }
    }

    /** `count` float32 little-endian values at byte `offset` of `bytes`. */
    fun floats(bytes: ByteArray, offset: Int, count: Int): FloatArray {
        val buffer = ByteBuffer.wrap(bytes, offset, count * 4).order(ByteOrder.LITTLE_ENDIAN)
        return FloatArray(count) { buffer.getFloat() }
    }
}

/** A contract's header (contract.json and wan_contract.json alike): version 1 and the replay file it describes. */
fun assertContractHeader(contract: Map<String, Any?>, replayBytes: ByteArray) {
    org.junit.jupiter.api.Assertions.assertEquals(1L, contract["contract_version"])
    org.junit.jupiter.api.Assertions.assertEquals(contract["replay_file_bytes"].asInt("replay_file_bytes"), replayBytes.size)
    org.junit.jupiter.api.Assertions.assertEquals(contract["replay_file_sha256"], sha256Hex(replayBytes))
}

/** JUnit's assertThrows for Kotlin call sites (Debian's junit5 jars have no Kotlin extensions). */
inline fun <reified T : Throwable> expectThrows(noinline block: () -> Unit): T =
    org.junit.jupiter.api.Assertions.assertThrows(T::class.java) { block() }

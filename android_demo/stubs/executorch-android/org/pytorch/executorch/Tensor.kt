// COMPILE-ONLY SIGNATURE STUB (see Module.kt in this folder): the public signatures of
// org.pytorch.executorch.Tensor and DType that the glue uses. Never packaged.
package org.pytorch.executorch

import java.nio.FloatBuffer

private const val STUB = "compile-only stub of org.pytorch:executorch-android; link the real AAR"

enum class DType(@JvmField val jniCode: Int) { UINT8(0), INT8(1), INT16(2), INT32(3), INT64(4), HALF(5), FLOAT(6), DOUBLE(7) }

abstract class Tensor internal constructor() {
    fun numel(): Long = throw UnsupportedOperationException(STUB)

    fun shape(): LongArray = throw UnsupportedOperationException(STUB)

    abstract fun dtype(): DType

    open val dataAsFloatArray: FloatArray get() = throw UnsupportedOperationException(STUB)

    open val dataAsLongArray: LongArray get() = throw UnsupportedOperationException(STUB)

    open fun copyDataInto(dst: FloatBuffer): Unit = throw UnsupportedOperationException(STUB)

    companion object {
        @JvmStatic fun allocateFloatBuffer(numElements: Int): FloatBuffer = throw UnsupportedOperationException(STUB)

        @JvmStatic fun fromBlob(data: FloatArray, shape: LongArray): Tensor = throw UnsupportedOperationException(STUB)

        @JvmStatic fun fromBlob(data: LongArray, shape: LongArray): Tensor = throw UnsupportedOperationException(STUB)

        @JvmStatic fun fromBlob(data: IntArray, shape: LongArray): Tensor = throw UnsupportedOperationException(STUB)

        @JvmStatic fun fromBlob(data: FloatBuffer, shape: LongArray): Tensor = throw UnsupportedOperationException(STUB)

        @JvmStatic fun numel(shape: LongArray): Long = throw UnsupportedOperationException(STUB)
    }
}

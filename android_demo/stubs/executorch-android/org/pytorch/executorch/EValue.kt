// COMPILE-ONLY SIGNATURE STUB (see Module.kt in this folder): the public signatures of
// org.pytorch.executorch.EValue that the glue uses. Never packaged.
package org.pytorch.executorch

private const val STUB = "compile-only stub of org.pytorch:executorch-android; link the real AAR"

class EValue private constructor() {
    val isNone: Boolean get() = throw UnsupportedOperationException(STUB)
    val isTensor: Boolean get() = throw UnsupportedOperationException(STUB)

    fun toTensor(): Tensor = throw UnsupportedOperationException(STUB)

    fun toInt(): Long = throw UnsupportedOperationException(STUB)

    fun toDouble(): Double = throw UnsupportedOperationException(STUB)

    companion object {
        @JvmStatic fun optionalNone(): EValue = throw UnsupportedOperationException(STUB)

        @JvmStatic fun from(tensor: Tensor): EValue = throw UnsupportedOperationException(STUB)

        @JvmStatic fun from(value: Boolean): EValue = throw UnsupportedOperationException(STUB)

        @JvmStatic fun from(value: Long): EValue = throw UnsupportedOperationException(STUB)

        @JvmStatic fun from(value: Double): EValue = throw UnsupportedOperationException(STUB)
    }
}

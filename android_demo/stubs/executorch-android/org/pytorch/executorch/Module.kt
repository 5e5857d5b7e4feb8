// COMPILE-ONLY SIGNATURE STUB. Never packaged, never run: the Gradle build does not include
// android_demo/stubs/; the app links the real org.pytorch:executorch-android AAR (version pinned in
// gradle/libs.versions.toml). This file repeats only the public signatures the glue uses, as declared in
// pytorch/executorch extension/android/executorch_android/src/main/java/org/pytorch/executorch/Module.kt
// (1.5 development line; unchanged for these members since release/1.4), so that
// `make test-android` can type-check app/.../ExecuTorchParts.kt on a machine without the Android SDK.
package org.pytorch.executorch

import java.io.Closeable

private const val STUB = "compile-only stub of org.pytorch:executorch-android; link the real AAR"

open class Module private constructor() : Closeable {
    open fun forward(vararg inputs: EValue): Array<EValue> = throw UnsupportedOperationException(STUB)

    open fun execute(methodName: String, vararg inputs: EValue): Array<EValue> = throw UnsupportedOperationException(STUB)

    open fun loadMethod(methodName: String): Unit = throw UnsupportedOperationException(STUB)

    open fun getMethods(): Array<String> = throw UnsupportedOperationException(STUB)

    open fun readLogBuffer(): Array<String>? = throw UnsupportedOperationException(STUB)

    open fun destroy(): Unit = throw UnsupportedOperationException(STUB)

    override fun close(): Unit = throw UnsupportedOperationException(STUB)

    companion object {
        const val LOAD_MODE_FILE = 0
        const val LOAD_MODE_MMAP = 1
        const val LOAD_MODE_MMAP_USE_MLOCK = 2
        const val LOAD_MODE_MMAP_USE_MLOCK_IGNORE_ERRORS = 3

        @JvmStatic
        @JvmOverloads
        fun load(modelPath: String?, loadMode: Int = LOAD_MODE_FILE, numThreads: Int = 0): Module =
            throw UnsupportedOperationException(STUB)
    }
}

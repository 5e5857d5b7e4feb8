// The screen's state and the one background thread that loads the export and generates clips.
package org.tomobile.demo

import android.app.Application
import android.graphics.Bitmap
import android.os.Handler
import android.os.Looper
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.setValue
import androidx.lifecycle.AndroidViewModel
import java.io.File
import java.util.concurrent.Executors
import org.tomobile.core.GenerationStats
import org.tomobile.core.ScreenSettings
import org.tomobile.core.frameArgb

/** Where the app looks for the export folder (README.md: adb push, then run-as cp into files/). */
const val EXPORT_FOLDER = "video-dit-tiny"

class DemoViewModel(app: Application) : AndroidViewModel(app) {
    val exportDir = File(app.filesDir, EXPORT_FOLDER)

    var settings by mutableStateOf(ScreenSettings())
    var status by mutableStateOf("Export folder: $exportDir")
        private set
    var running by mutableStateOf(false)
        private set
    var frames by mutableStateOf<List<Bitmap>>(emptyList())
        private set
    var stats by mutableStateOf<GenerationStats?>(null)
        private set

    private val worker = Executors.newSingleThreadExecutor()
    private val main = Handler(Looper.getMainLooper())
    private var export: LoadedExport? = null // touched only on `worker`

    fun generate() {
        if (running) return
        val typed = settings
        running = true
        status = "Loading..."
        worker.execute {
            try {
                val loaded = export ?: loadExport(exportDir).also { it.parts.preload(); export = it }
                val cfg = typed.toConfig(loaded.manifest.defaults)
                val gen = loaded.pipeline.generate(typed.prompt, typed.seedValue(), cfg) { step ->
                    main.post { status = "Step ${step.stepsDone} of ${cfg.steps} (${step.variant})" }
                }
                val shape = loaded.manifest.shape
                val bitmaps = (0 until shape[2]).map { t ->
                    Bitmap.createBitmap(frameArgb(gen.frames, shape, t), shape[4], shape[3], Bitmap.Config.ARGB_8888)
                }
                main.post {
                    frames = bitmaps
                    stats = gen.stats
                    status = "Done"
                }
            } catch (e: Exception) { // a missing or altered file, a bad setting, a runtime error: say which
                main.post { status = "Error: ${e.message}" }
            } finally {
                main.post { running = false }
            }
        }
    }

    override fun onCleared() {
        worker.execute { export?.close() }
        worker.shutdown()
    }
}

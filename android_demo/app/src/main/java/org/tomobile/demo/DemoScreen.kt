// The screen: prompt, seed, steps, LPL off / N / auto, TDTM steps, spatial ToMe on/off, the clip playing
// (scaled up, looping) and the denoiser calls and timings. The same screen as web_demo/ and ios_demo/.
package org.tomobile.demo

import android.graphics.Bitmap
import androidx.compose.foundation.Image
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.layout.size
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.text.KeyboardOptions
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.FilterChip
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Switch
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableIntStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.FilterQuality
import androidx.compose.ui.graphics.asImageBitmap
import androidx.compose.ui.text.input.KeyboardType
import androidx.compose.ui.unit.dp
import kotlinx.coroutines.delay
import org.tomobile.core.GenerationStats

@Composable
fun DemoScreen(model: DemoViewModel) {
    val s = model.settings
    Column(
        modifier = Modifier.padding(16.dp).verticalScroll(rememberScrollState()),
        verticalArrangement = Arrangement.spacedBy(8.dp),
    ) {
        OutlinedTextField(s.prompt, { model.settings = s.copy(prompt = it) }, label = { Text("Prompt") }, modifier = Modifier.fillMaxWidth())
        Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            NumberField("Seed", s.seed, Modifier.weight(1f)) { model.settings = s.copy(seed = it) }
            NumberField("Steps", s.steps, Modifier.weight(1f)) { model.settings = s.copy(steps = it) }
            NumberField("TDTM steps", s.tdtmSteps, Modifier.weight(1f)) { model.settings = s.copy(tdtmSteps = it) }
        }
        LeapChooser(s.lpl) { model.settings = s.copy(lpl = it) }
        Row(verticalAlignment = Alignment.CenterVertically) {
            Switch(checked = s.spatial, onCheckedChange = { model.settings = s.copy(spatial = it) })
            Text("  Spatial ToMe (denoiser_tome variants)")
        }
        Button(onClick = model::generate, enabled = !model.running) { Text(if (model.running) "Generating..." else "Generate") }
        Text(model.status)
        ClipPlayer(model.frames)
        model.stats?.let { StatsText(it) }
    }
}

@Composable
private fun NumberField(label: String, value: String, modifier: Modifier, onChange: (String) -> Unit) {
    OutlinedTextField(
        value, onChange, label = { Text(label) }, singleLine = true, modifier = modifier,
        keyboardOptions = KeyboardOptions(keyboardType = KeyboardType.Number),
    )
}

/** LPL: off, a fixed leap after N steps, or auto (On-device Sora's rule). */
@Composable
private fun LeapChooser(lpl: String, onChange: (String) -> Unit) {
    val mode = when (lpl.trim().lowercase()) {
        "off" -> "off"
        "auto" -> "auto"
        else -> "n"
    }
    Row(verticalAlignment = Alignment.CenterVertically, horizontalArrangement = Arrangement.spacedBy(8.dp)) {
        Text("LPL")
        FilterChip(selected = mode == "off", onClick = { onChange("off") }, label = { Text("off") })
        FilterChip(selected = mode == "n", onClick = { if (mode != "n") onChange("15") }, label = { Text("N") })
        FilterChip(selected = mode == "auto", onClick = { onChange("auto") }, label = { Text("auto") })
        if (mode == "n") NumberField("leap after", lpl, Modifier.weight(1f), onChange)
    }
}

/** The clip, scaled up with nearest-neighbour sampling, looping at 8 frames per second. */
@Composable
private fun ClipPlayer(frames: List<Bitmap>) {
    if (frames.isEmpty()) return
    var index by remember(frames) { mutableIntStateOf(0) }
    LaunchedEffect(frames) {
        while (true) {
            delay(125)
            index = (index + 1) % frames.size
        }
    }
    Image(
        bitmap = frames[index].asImageBitmap(),
        contentDescription = "generated clip, frame ${index + 1} of ${frames.size}",
        filterQuality = FilterQuality.None,
        modifier = Modifier.size(256.dp),
    )
}

@Composable
private fun StatsText(stats: GenerationStats) {
    val perCall = stats.callMillis
    val leap = stats.leapAt?.let { ", leap at step $it" } ?: ""
    Text("Denoiser calls: ${stats.calls} (${stats.mergedCalls} TDTM-merged)$leap")
    if (perCall.isNotEmpty()) {
        Text("ms per call: mean %.1f, min %.1f, max %.1f".format(perCall.average(), perCall.min(), perCall.max()))
    }
    Text("Sampling %.0f ms, text encoder %.0f ms".format(stats.sampleMillis, stats.encodeMillis))
    Text("Variants: ${stats.variants.distinct().joinToString(", ")}")
}

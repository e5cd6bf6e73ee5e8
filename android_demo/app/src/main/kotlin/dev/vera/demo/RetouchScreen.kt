package dev.vera.demo

import android.graphics.Bitmap
import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts.PickVisualMedia
import androidx.compose.foundation.Image
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Box
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.Card
import androidx.compose.material3.FilterChip
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Slider
import androidx.compose.material3.Switch
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableFloatStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.draw.drawWithContent
import androidx.compose.ui.graphics.asImageBitmap
import androidx.compose.ui.graphics.drawscope.clipRect
import androidx.compose.ui.layout.ContentScale
import androidx.compose.ui.unit.dp
import androidx.lifecycle.compose.collectAsStateWithLifecycle

/** Pick a photo, choose a mode, watch the reasoning stream, compare before/after, save. */
@Composable
fun RetouchScreen(model: RetouchViewModel) {
    val state by model.state.collectAsStateWithLifecycle()
    val pickers = listOf("photo", "before", "after").associateWith { slot ->
        rememberLauncherForActivityResult(PickVisualMedia()) { uri -> uri?.let { model.pickPhoto(it, slot) } }
    }
    val pick = { slot: String -> pickers.getValue(slot).launch(PickVisualMediaRequest(PickVisualMedia.ImageOnly)) }

    Column(Modifier.verticalScroll(rememberScrollState()).padding(16.dp), verticalArrangement = Arrangement.spacedBy(12.dp)) {
        Text("Vera Retouch", style = MaterialTheme.typography.headlineSmall)
        Text(state.status, style = MaterialTheme.typography.bodySmall)
        Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            Button(onClick = { pick("photo") }) { Text("Pick a photo") }
            OutlinedButton(onClick = model::useSample) { Text("Sample") }
        }
        ModeChips(state, model::setMode)
        when (state.mode) {
            "style" -> OutlinedTextField(state.prompt, model::setPrompt, Modifier.fillMaxWidth(),
                label = { Text("Instruction, e.g. I want a warm film look.") })
            "param" -> SliderGroups(state, model::setSlider)
            "reference" -> Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                OutlinedButton(onClick = { pick("before") }) { Text(if (state.referenceBefore == null) "Example: before" else "Before ✓") }
                OutlinedButton(onClick = { pick("after") }) { Text(if (state.referenceAfter == null) "Example: after" else "After ✓") }
            }
        }
        Row(verticalAlignment = Alignment.CenterVertically, horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            Switch(state.exact, model::setExact)
            Text(if (state.exact) "Exact rendering (every pixel)" else "LUT rendering (GPU)")
        }
        Button(onClick = model::retouch, enabled = state.engineReady && state.photo != null && !state.busy) { Text("Retouch") }
        if (state.busy) LinearProgressIndicator(Modifier.fillMaxWidth())
        if (state.reasoning.isNotEmpty()) Card { Text(state.reasoning, Modifier.padding(12.dp)) }
        state.plan?.let { plan ->
            Card {
                Column(Modifier.padding(12.dp)) {
                    for ((section, text) in plan.plan.sections) if (!text.isNullOrEmpty()) Text("$section: $text")
                    if (plan.generation.forcedTokens.isNotEmpty()) Text("forced: ${plan.generation.forcedTokens.joinToString()}")
                }
            }
        }
        val photo = state.photo
        val result = state.result
        if (photo != null && result != null) {
            BeforeAfter(photo, result)
            Button(onClick = model::save) { Text("Save") }
        } else if (photo != null) {
            Image(photo.asImageBitmap(), "photo", Modifier.fillMaxWidth(), contentScale = ContentScale.FillWidth)
        }
        state.message?.let { Text(it, style = MaterialTheme.typography.bodySmall) }
    }
}

@Composable
private fun ModeChips(state: UiState, onMode: (String) -> Unit) {
    val modes = listOf("auto", "style", "param") + if (state.hasReference) listOf("reference") else emptyList()
    Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
        for (mode in modes) FilterChip(selected = state.mode == mode, onClick = { onMode(mode) }, label = { Text(mode) })
    }
}

/** The 38 sliders in the manifest's groups and order, on the ±100 scale. */
@Composable
private fun SliderGroups(state: UiState, onSlider: (String, Float) -> Unit) {
    Column {
        for ((group, names) in state.sliderGroups) {
            Text(group, style = MaterialTheme.typography.titleSmall)
            for (name in names) {
                val value = state.sliders[name] ?: 0f
                Text("$name ${value.toInt()}", style = MaterialTheme.typography.bodySmall)
                Slider(value, { onSlider(name, Math.round(it).toFloat()) }, valueRange = -100f..100f)
            }
        }
    }
}

/** The result with the original drawn over its left part; the slider moves the split. */
@Composable
private fun BeforeAfter(before: Bitmap, after: Bitmap) {
    var split by remember { mutableFloatStateOf(0.5f) }
    Box {
        Image(after.asImageBitmap(), "after", Modifier.fillMaxWidth(), contentScale = ContentScale.FillWidth)
        Image(before.asImageBitmap(), "before", Modifier.fillMaxWidth().drawWithContent {
            clipRect(right = size.width * split) { this@drawWithContent.drawContent() }
        }, contentScale = ContentScale.FillWidth)
    }
    Slider(split, { split = it })
    Text("before ← | → after", style = MaterialTheme.typography.bodySmall)
}

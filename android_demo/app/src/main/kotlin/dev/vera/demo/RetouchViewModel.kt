package dev.vera.demo

import android.app.Application
import android.graphics.Bitmap
import android.net.Uri
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.SavedStateHandle
import androidx.lifecycle.viewModelScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import vera.core.PlanResult
import vera.core.Request
import java.io.File
import java.util.concurrent.Executors

data class UiState(
    val status: String = "Loading the bundle…",
    val engineReady: Boolean = false,
    val sliderGroups: Map<String, List<String>> = emptyMap(),
    val hasReference: Boolean = false,
    val mode: String = "auto",
    val prompt: String = "",
    val sliders: Map<String, Float> = emptyMap(),
    val photo: Bitmap? = null,
    val referenceBefore: Bitmap? = null,
    val referenceAfter: Bitmap? = null,
    val exact: Boolean = false,
    val busy: Boolean = false,
    val reasoning: String = "",
    val plan: PlanResult? = null,
    val result: Bitmap? = null,
    val lut: FloatArray? = null,
    val message: String? = null
)

/**
 * The app's state and actions. All model work runs on one background thread that owns the
 * [Engine] (its GL context and K/V cache); the UI only observes [state].
 */
class RetouchViewModel(application: Application, launch: SavedStateHandle) : AndroidViewModel(application) {
    private val worker = Executors.newSingleThreadExecutor().asCoroutineDispatcher()
    // Started with `--ez resident true` (adb; the intent's extras reach the handle): the engine keeps the
    // planner's vision encoder loaded between photos.
    private val resident = launch.get<Boolean>("resident") ?: false
    private val _state = MutableStateFlow(UiState())
    val state: StateFlow<UiState> = _state
    private var engine: Engine? = null

    /** Where `adb push` puts the bundle: /sdcard/Android/data/dev.vera.demo/files/bundle. */
    val bundleDir: File = File(application.getExternalFilesDir(null), "bundle")

    init {
        viewModelScope.launch(worker) { loadBundle() }
    }

    private fun loadBundle() {
        val opened = try {
            Engine.open(bundleDir, resident)
        } catch (e: Exception) {
            _state.update { it.copy(status = "No usable bundle in $bundleDir: ${e.message}. See android_demo/README.md.") }
            return
        }
        engine = opened
        _state.update {
            it.copy(status = "Bundle loaded; self-checking…", engineReady = true,
                sliderGroups = opened.manifest.prompts.sliderGroups, hasReference = opened.hasReference)
        }
        val problems = opened.selfCheck()
        _state.update {
            it.copy(status = if (problems.isEmpty()) "Bundle loaded; golden vectors reproduce."
            else "Self-check FAILED: ${problems.joinToString("; ")}")
        }
    }

    /** The sample photo ships in the app's assets (the SDK's own vera_mobile/assets). */
    fun useSample() = load { Photos.loadAsset(getApplication(), SAMPLE) }

    fun pickPhoto(uri: Uri, slot: String) = viewModelScope.launch(worker) {
        val bitmap = Photos.load(getApplication(), uri)
        _state.update {
            when (slot) {
                "before" -> it.copy(referenceBefore = bitmap)
                "after" -> it.copy(referenceAfter = bitmap)
                else -> it.copy(photo = bitmap, result = null, lut = null, plan = null, reasoning = "")
            }
        }
    }

    private fun load(decode: () -> Bitmap) = viewModelScope.launch(worker) {
        val bitmap = decode()
        _state.update { it.copy(photo = bitmap, result = null, lut = null, plan = null, reasoning = "") }
    }

    fun setMode(mode: String) = _state.update { it.copy(mode = mode) }

    fun setPrompt(text: String) = _state.update { it.copy(prompt = text) }

    fun setSlider(name: String, value: Float) = _state.update { it.copy(sliders = it.sliders + (name to value)) }

    fun setExact(exact: Boolean) = _state.update { it.copy(exact = exact) }

    fun retouch() {
        val current = _state.value
        val engine = engine ?: return
        val photo = current.photo ?: return
        _state.update { it.copy(busy = true, reasoning = "", plan = null, result = null, message = null) }
        viewModelScope.launch(worker) {
            try {
                val request = Request(
                    engine.manifest.prompts, current.mode, current.prompt.takeIf { current.mode == "style" },
                    current.sliders.mapValues { it.value.toDouble() }.takeIf { current.mode == "param" }
                )
                val reference = current.referenceBefore?.let { before -> current.referenceAfter?.let { before to it } }
                val output = engine.retouch(
                    RetouchInput(request, photo, reference, current.exact),
                    onText = { piece -> _state.update { it.copy(reasoning = it.reasoning + piece) } },
                    onStep = {}
                )
                val seconds = output.timingsMs.entries.joinToString(", ") { "${it.key} ${"%.0f".format(it.value)} ms" }
                _state.update { it.copy(busy = false, plan = output.plan, result = output.image, lut = output.lut, message = seconds) }
            } catch (e: Exception) {
                _state.update { it.copy(busy = false, message = "Error: ${e.message}") }
            }
        }
    }

    /** Save the retouched photo (and the LUT as a .cube beside the app's files) without touching the input. */
    fun save() {
        val current = _state.value
        val image = current.result ?: return
        val engine = engine ?: return
        viewModelScope.launch(worker) {
            val name = "vera-${System.currentTimeMillis()}"
            val message = try {
                val uri = Photos.save(getApplication(), image, name)
                current.lut?.let { engine.writeCube(it, File(getApplication<Application>().getExternalFilesDir(null), "$name.cube"), "vera-mobile ${current.mode}") }
                "Saved to $uri"
            } catch (e: Exception) {
                "Could not save: ${e.message}"
            }
            _state.update { it.copy(message = message) }
        }
    }

    /** Benchmark mode (adb: --ez benchmark true): fixed inputs, one result file. */
    fun benchmark(onDone: (String) -> Unit) = viewModelScope.launch(worker) {
        val engine = engine ?: return@launch onDone("no bundle: ${_state.value.status}")
        val message = try {
            "benchmark written to ${BenchmarkRunner.run(getApplication(), engine)}"
        } catch (e: Exception) {
            "benchmark failed: ${e.message}"
        }
        withContext(Dispatchers.Main) { onDone(message) }
    }

    override fun onCleared() {
        worker.executor.execute { engine?.close() } // on the engine's own thread, after queued work
        worker.close()
        super.onCleared()
    }

    companion object {
        const val SAMPLE = "sample_trier_dark.jpg"
    }
}

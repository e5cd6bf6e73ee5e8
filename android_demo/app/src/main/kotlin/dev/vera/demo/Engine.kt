package dev.vera.demo

import android.graphics.Bitmap
import vera.core.Bundle
import vera.core.InputError
import vera.core.Lut
import vera.core.PlanResult
import vera.core.Planner
import vera.core.Request
import vera.core.SamplingOptions
import vera.core.SelfCheck
import java.io.File

/** What one retouch needs; [reference] is (before, after) in reference mode. */
class RetouchInput(
    val request: Request,
    val photo: Bitmap,
    val reference: Pair<Bitmap, Bitmap>? = null,
    val exact: Boolean = false,
    val maxNewTokens: Int = 1024
)

class RetouchOutput(val image: Bitmap, val plan: PlanResult?, val lut: FloatArray?, val timingsMs: Map<String, Double>)

/**
 * Everything the app runs, wired from the bundle's manifest: the ExecuTorch planner, renderer and
 * reference encoder, the HF tokenizer, the GPU LUT pass. The Android side of Retoucher
 * (vera_mobile/runtime/retoucher.py). Not thread-safe: use it from one thread (the GL context and
 * the decoder's K/V cache belong to it). [resident] keeps the planner's vision encoder loaded next
 * to its language model instead of loading it for each photo (VisionEncoderLoader).
 */
class Engine(val bundle: Bundle, val resident: Boolean = false) : AutoCloseable {
    val manifest = bundle.manifest
    val tokenizer = HfTokenizer(bundle.file(manifest.tokenizer.file))
    val plannerBackend = ExecuTorchPlanner(
        bundle.file(manifest.artifact("planner", TARGET)).path, manifest.imageSize, manifest.hiddenSize, resident
    )
    val planner = Planner(manifest, plannerBackend, tokenizer)
    val renderer = renderer("renderer")
    private val reference = if (manifest.has("reference", TARGET)) {
        val size = ((manifest.preprocessing["reference"] as Map<*, *>)["size"] as Double).toInt()
        ExecuTorchReferenceEncoder(bundle.file(manifest.artifact("reference", TARGET)).path, size) to renderer("reference_renderer")
    } else {
        null
    }
    val hasReference get() = reference != null
    private val glContext = lazy { GlLut() } // created on first use, on the engine's thread
    private val gl by glContext

    /** Replays the golden vectors of the planner and renderer: empty when the artifacts reproduce them. */
    fun selfCheck(): List<String> {
        val problems = ArrayList<String>()
        manifest.golden("planner", TARGET)?.let { problems += SelfCheck.checkPlanner(plannerBackend, tokenizer, manifest, it) }
        manifest.golden("renderer")?.let { problems += SelfCheck.checkRenderer(renderer, it) }
        return problems
    }

    fun retouch(input: RetouchInput, onText: (String) -> Unit, onStep: (Int) -> Unit): RetouchOutput {
        val timings = LinkedHashMap<String, Double>()
        val request = input.request
        val plan: PlanResult?
        val latent: FloatArray
        val mask: FloatArray
        val render: vera.core.RendererBackend
        if (request.mode == "reference") {
            val (encoder, referenceRenderer) = reference ?: throw InputError("this bundle has no reference encoder")
            val (before, after) = input.reference ?: throw InputError("reference mode needs a before and an after photo")
            mask = request.mask()
            latent = timed(timings, "reference_encoder") {
                encoder.encode(Photos.referenceView(before, manifest), Photos.referenceView(after, manifest), mask)
            }
            plan = null
            render = referenceRenderer
        } else {
            val pixels = if (request.usesImageTokens) timed(timings, "planner_view") { Photos.plannerView(input.photo, manifest) } else null
            plan = timed(timings, "plan") {
                planner.plan(request, pixels, SamplingOptions(maxNewTokens = input.maxNewTokens), onText, onStep)
            }
            latent = plan.latent
            mask = plan.mask
            render = renderer
        }
        val tile = manifest.renderer.tile
        if (input.exact) {
            val pixels = Photos.pixels(input.photo)
            val out = timed(timings, "render_exact") { Lut.renderPixels(render, pixels, latent, mask, tile) }
            return RetouchOutput(Photos.fromPixels(out, input.photo.width, input.photo.height), plan, null, timings)
        }
        val lut = timed(timings, "lut_bake") {
            Lut.bake(render, render.condition(latent, mask), manifest.renderer.lutSize, tile)
        }
        val image = timed(timings, "lut_apply") { gl.apply(input.photo, lut, manifest.renderer.lutSize) }
        return RetouchOutput(image, plan, lut, timings)
    }

    /** The baked LUT as a `.cube` file (the format every editor and ffmpeg reads). */
    fun writeCube(lut: FloatArray, file: File, title: String) {
        val temp = File(file.parentFile, ".${file.name}.tmp")
        temp.writeText(Lut.cube(lut, manifest.renderer.lutSize, title), Charsets.US_ASCII)
        check(temp.renameTo(file)) { "could not write $file" }
    }

    fun applyLut(photo: Bitmap, lut: FloatArray): Bitmap = gl.apply(photo, lut, manifest.renderer.lutSize)

    private fun renderer(component: String): ExecuTorchRenderer {
        val artifact = manifest.artifact(component, TARGET)
        val tile = (artifact.methods.getValue("render_points").inputs[0].shape[0] as Double).toInt()
        return ExecuTorchRenderer(bundle.file(artifact).path, tile, manifest.renderer.biasSize)
    }

    override fun close() {
        plannerBackend.close()
        tokenizer.close()
        if (glContext.isInitialized()) gl.close()
    }

    companion object {
        const val TARGET = "executorch"

        fun open(directory: File, resident: Boolean = false): Engine = Engine(Bundle.load(directory), resident)
    }
}

/** Runs [block] and records its wall time in milliseconds under [name]. */
inline fun <T> timed(timings: MutableMap<String, Double>, name: String, block: () -> T): T {
    val start = System.nanoTime()
    val result = block()
    timings[name] = (System.nanoTime() - start) / 1e6
    return result
}

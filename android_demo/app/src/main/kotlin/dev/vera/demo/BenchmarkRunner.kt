package dev.vera.demo

import android.content.Context
import android.graphics.Bitmap
import android.os.Build
import vera.core.Benchmark
import vera.core.Json
import vera.core.Lut
import vera.core.Planner
import vera.core.Request
import vera.core.SamplingOptions
import vera.core.SelfCheck
import vera.core.TimedPlanner
import vera.core.floats
import vera.core.list
import vera.core.obj
import java.io.File
import java.time.Instant
import java.time.temporal.ChronoUnit

/**
 * Benchmark mode: the fixed inputs of vera.core.Benchmark through this phone's runtimes, written as
 * one result file in the shared schema (benchmarks/device_result.schema.json).
 */
object BenchmarkRunner {
    const val RESULT_NAME = "vera-benchmark.json"

    fun run(context: Context, engine: Engine): File {
        val manifest = engine.manifest
        val pixels = SelfCheck.goldenPixels(manifest.imageSize)
        engine.plannerBackend.encodeImage(pixels) // warm-up: first-call allocations are not the steady state
        // Unless the engine is resident, this includes loading and releasing the vision encoder, as each photo does.
        val visionMs = millis { engine.plannerBackend.encodeImage(pixels) }

        val timedPlanner = TimedPlanner(engine.plannerBackend)
        val result = Planner(manifest, timedPlanner, engine.tokenizer)
            .plan(Request(manifest.prompts, "auto"), pixels, SamplingOptions(maxNewTokens = Benchmark.DECODE_TOKENS))

        val golden = manifest.golden("renderer")!!.obj("condition")
        var lut = FloatArray(0)
        val bakeMs = millis {
            val biases = engine.renderer.condition(golden.list("latent").floats(), golden.list("mask").floats())
            lut = Lut.bake(engine.renderer, biases, manifest.renderer.lutSize, manifest.renderer.tile)
        }
        val photo = patternPhoto()
        engine.applyLut(Bitmap.createBitmap(photo, 0, 0, 64, 64), lut) // warm-up: shader compilation
        val applyMs = millis { engine.applyLut(photo, lut) }

        val document = Benchmark.result(
            tool = "vera-mobile android demo",
            toolVersion = context.packageManager.getPackageInfo(context.packageName, 0).versionName ?: "unknown",
            date = Instant.now().truncatedTo(ChronoUnit.SECONDS).toString(),
            device = device(),
            backend = "executorch-xnnpack",
            recipe = manifest.artifact("planner", Engine.TARGET).recipe ?: "unknown",
            metrics = Benchmark.Metrics(
                visionMs, timedPlanner.prefillTokensPerS(), timedPlanner.decodeTokensPerS(), bakeMs, applyMs, peakMemoryMb()
            ),
            details = linkedMapOf(
                "prefill_tokens" to timedPlanner.prefillTokens, "decode_tokens" to timedPlanner.decodeTokens,
                "generated" to result.generation.tokenIds.size, "lut_size" to manifest.renderer.lutSize,
                "resident" to engine.resident,
                "source_sha256" to manifest.json.obj("source")["sha256"], "lut_apply" to "OpenGL ES 3 (GPU)"
            )
        )
        val out = File(context.getExternalFilesDir(null), RESULT_NAME)
        val temp = File(out.parentFile, ".$RESULT_NAME.tmp")
        temp.writeText(Json.write(document) + "\n")
        check(temp.renameTo(out)) { "could not write $out" }
        return out
    }

    /** The 12 MP benchmark photo, the same pattern on every platform (Benchmark.applyPixel). */
    private fun patternPhoto(): Bitmap {
        val width = Benchmark.APPLY_WIDTH
        val height = Benchmark.APPLY_HEIGHT
        val argb = IntArray(width * height) { Benchmark.applyPixel(it % width, it / width) }
        return Bitmap.createBitmap(argb, width, height, Bitmap.Config.ARGB_8888)
    }

    private fun device(): Map<String, String> {
        val device = linkedMapOf("name" to "${Build.MANUFACTURER} ${Build.MODEL}",
            "os" to "Android ${Build.VERSION.RELEASE} (API ${Build.VERSION.SDK_INT})")
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) device["soc"] = "${Build.SOC_MANUFACTURER} ${Build.SOC_MODEL}"
        return device
    }

    /** VmHWM: the process's peak resident memory. */
    private fun peakMemoryMb(): Double? = File("/proc/self/status").readLines()
        .firstOrNull { it.startsWith("VmHWM:") }
        ?.split(Regex("\\s+"))?.getOrNull(1)?.toDoubleOrNull()?.div(1024)

    private inline fun millis(block: () -> Unit): Double {
        val start = System.nanoTime()
        block()
        return (System.nanoTime() - start) / 1e6
    }
}

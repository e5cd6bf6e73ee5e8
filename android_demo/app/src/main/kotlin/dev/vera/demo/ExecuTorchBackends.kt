package dev.vera.demo

import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import vera.core.Decoded
import vera.core.PlannerBackend
import vera.core.RendererBackend
import vera.core.Rows
import vera.core.VisionEncoder
import vera.core.VisionEncoderLoader

/**
 * The bundle's ExecuTorch programs behind the core's backend interfaces: the Android counterpart of
 * vera_mobile/runtime/executorch_planner.py and renderer_backends.py, with the same method names,
 * positional inputs and dtypes (ids and positions int64) as the manifest lists.
 *
 * The planner's vision method runs in a Module of its own, loaded when [VisionEncoderLoader] says
 * ([resident]: kept, otherwise once per photo); the language model's Module stays loaded.
 */
class ExecuTorchPlanner(
    path: String,
    imageSize: Int,
    private val hiddenSize: Int,
    resident: Boolean = false
) : PlannerBackend, AutoCloseable {
    // A Module loads a method on its first execute, so this one never holds the vision encoder.
    private val module = Module.load(path, Module.LOAD_MODE_MMAP)
    private val vision = VisionEncoderLoader({ ExecuTorchVisionEncoder(path, imageSize) }, resident)
    // ExecuTorch's LLM convention: get_max_seq_len bounds one decoder call, get_max_context_len the K/V cache.
    private val maxCallLen = module.execute("get_max_seq_len")[0].toInt().toInt()
    private val maxContextLen = module.execute("get_max_context_len")[0].toInt().toInt()
    private var position = 0

    override fun encodeImage(pixels: FloatArray): Rows = vision.encode(pixels)

    override fun embed(ids: IntArray): Rows {
        val input = Tensor.fromBlob(LongArray(ids.size) { ids[it].toLong() }, longArrayOf(1, ids.size.toLong()))
        return rows(run("token_embedding", input)[0])
    }

    override fun reset() {
        // Stale cache slots need no clearing: the decoder masks every slot after the query position.
        position = 0
    }

    override fun decode(embeds: Rows): Decoded {
        require(embeds.width == hiddenSize) { "decoder embeddings must be $hiddenSize wide, got ${embeds.width}" }
        require(position + embeds.count <= maxContextLen) {
            "the sequence would reach ${position + embeds.count} positions, beyond the program's $maxContextLen"
        }
        var out: List<Tensor>? = null
        var start = 0
        while (start < embeds.count) { // long prompts go in chunks the program accepts
            val count = minOf(maxCallLen, embeds.count - start)
            val chunk = embeds.data.copyOfRange(start * hiddenSize, (start + count) * hiddenSize)
            val positions = LongArray(count) { (position + it).toLong() }
            out = run(
                "text_decoder_with_hidden",
                Tensor.fromBlob(chunk, longArrayOf(1, count.toLong(), hiddenSize.toLong())),
                Tensor.fromBlob(positions, longArrayOf(count.toLong()))
            )
            position += count
            start += count
        }
        return Decoded(out!![0].dataAsFloatArray, out[1].dataAsFloatArray)
    }

    override fun latent(hidden3: List<FloatArray>, mask: FloatArray): FloatArray {
        val flat = FloatArray(3 * hiddenSize).also { hidden3.forEachIndexed { i, row -> row.copyInto(it, i * hiddenSize) } }
        return run(
            "retouch_head",
            Tensor.fromBlob(flat, longArrayOf(1, 3, hiddenSize.toLong())),
            Tensor.fromBlob(mask, longArrayOf(1, 3))
        )[0].dataAsFloatArray
    }

    override fun close() {
        vision.close()
        module.destroy()
    }

    private fun run(method: String, vararg inputs: Tensor): List<Tensor> =
        module.execute(method, *inputs.map { EValue.from(it) }.toTypedArray()).map { it.toTensor() }
}

/**
 * The planner program with only its vision method loaded. Destroying the Module is what frees the
 * method's packed weights and activation arena; ExecuTorch has no call that unloads one method.
 */
private class ExecuTorchVisionEncoder(path: String, private val imageSize: Int) : VisionEncoder {
    private val module = Module.load(path, Module.LOAD_MODE_MMAP)

    override fun encode(pixels: FloatArray): Rows {
        val input = Tensor.fromBlob(pixels, longArrayOf(1, 3, imageSize.toLong(), imageSize.toLong()))
        return rows(module.execute("vision_encoder", EValue.from(input))[0].toTensor())
    }

    override fun close() = module.destroy()
}

/** [1, N, H] -> N rows of H. */
private fun rows(tensor: Tensor): Rows {
    val shape = tensor.shape()
    return Rows(shape[1].toInt(), shape[2].toInt(), tensor.dataAsFloatArray)
}

/** A renderer `.pte` (methods condition and render_points), fixed tile size from the manifest. */
class ExecuTorchRenderer(path: String, override val tile: Int, private val biasSize: Int) : RendererBackend {
    private val module = Module.load(path, Module.LOAD_MODE_MMAP)

    override fun condition(latent: FloatArray, mask: FloatArray): FloatArray = module.execute(
        "condition",
        EValue.from(Tensor.fromBlob(latent, longArrayOf(1, latent.size.toLong()))),
        EValue.from(Tensor.fromBlob(mask, longArrayOf(1, 3)))
    )[0].toTensor().dataAsFloatArray

    override fun renderPoints(points: FloatArray, biases: FloatArray): FloatArray = module.execute(
        "render_points",
        EValue.from(Tensor.fromBlob(points, longArrayOf((points.size / 3).toLong(), 3))),
        EValue.from(Tensor.fromBlob(biases, longArrayOf(biasSize.toLong())))
    )[0].toTensor().dataAsFloatArray
}

/** The reference encoder `.pte` (method encode): an example edit (before, after) to a latent. */
class ExecuTorchReferenceEncoder(path: String, private val size: Int) {
    private val module = Module.load(path, Module.LOAD_MODE_MMAP)

    fun encode(before: FloatArray, after: FloatArray, mask: FloatArray): FloatArray {
        val shape = longArrayOf(1, 3, size.toLong(), size.toLong())
        return module.execute(
            "encode",
            EValue.from(Tensor.fromBlob(before, shape)),
            EValue.from(Tensor.fromBlob(after, shape)),
            EValue.from(Tensor.fromBlob(mask, longArrayOf(1, 3)))
        )[0].toTensor().dataAsFloatArray
    }
}

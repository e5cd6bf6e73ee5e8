package vera.core

/**
 * The planner's vision encoder, loaded apart from its language model: close() releases it. Loaded,
 * it holds its weights and its activation arena, the planner's largest buffer at full size.
 */
interface VisionEncoder : AutoCloseable {
    fun encode(pixels: FloatArray): Rows // [3, S, S] in [0, 1] -> [N, hidden]
}

/**
 * When the vision encoder is loaded, as the Python runtime's bundle planners decide ("Memory" under
 * Bundles in README.md). Not [resident]: each [encode] loads one with [load] and releases it before
 * returning, so it is never loaded while the language model decodes. [resident]: the first one
 * stays loaded until [close], faster for many photos at the cost of memory.
 */
class VisionEncoderLoader(private val load: () -> VisionEncoder, val resident: Boolean) : AutoCloseable {
    private var loaded: VisionEncoder? = null

    fun encode(pixels: FloatArray): Rows {
        val encoder = loaded ?: load()
        if (resident) {
            loaded = encoder
            return encoder.encode(pixels)
        }
        try {
            return encoder.encode(pixels)
        } finally {
            encoder.close()
        }
    }

    override fun close() {
        loaded?.close()
        loaded = null
    }
}

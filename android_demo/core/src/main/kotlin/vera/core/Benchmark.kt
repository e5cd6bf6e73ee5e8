package vera.core

/**
 * The phone benchmark: fixed inputs, and a result in the schema every platform writes
 * (benchmarks/device_result.schema.json; benchmarks/device_table.py compares any set of them).
 *
 * Inputs: the golden pixels for the vision encoder, the auto-mode prompt with greedy decoding for
 * prefill and decode, the renderer's golden latent for the LUT bake, and a 4000 x 3000 (12 MP)
 * photo for the LUT application.
 */
object Benchmark {
    const val SCHEMA_VERSION = 1
    const val DECODE_TOKENS = 64
    const val APPLY_WIDTH = 4000
    const val APPLY_HEIGHT = 3000

    /** The 12 MP benchmark photo: a closed-form pattern, the same on every platform. */
    fun applyPixel(x: Int, y: Int): Int =
        (0xff shl 24) or (((x * 7) and 0xff) shl 16) or (((y * 13) and 0xff) shl 8) or ((x + y) and 0xff)

    class Metrics(
        val visionMs: Double?,
        val prefillTokensPerS: Double?,
        val decodeTokensPerS: Double?,
        val lutBakeMs: Double?,
        val lutApply12mpMs: Double?,
        val peakMemoryMb: Double?
    )

    /** The result document; null metrics were not measured on this device. */
    fun result(
        tool: String,
        toolVersion: String,
        date: String,
        device: Map<String, String>,
        backend: String,
        recipe: String,
        metrics: Metrics,
        details: Map<String, Any?> = emptyMap()
    ): Map<String, Any?> = linkedMapOf(
        "schema_version" to SCHEMA_VERSION,
        "tool" to linkedMapOf("name" to tool, "version" to toolVersion),
        "date" to date,
        "device" to device,
        "backend" to backend,
        "recipe" to recipe,
        "metrics" to linkedMapOf(
            "vision_ms" to metrics.visionMs,
            "prefill_tokens_per_s" to metrics.prefillTokensPerS,
            "decode_tokens_per_s" to metrics.decodeTokensPerS,
            "lut_bake_ms" to metrics.lutBakeMs,
            "lut_apply_12mp_ms" to metrics.lutApply12mpMs,
            "peak_memory_mb" to metrics.peakMemoryMb
        ),
        "details" to details
    )
}

/** Wraps a planner backend and times its calls: the first decode after reset is the prefill. */
class TimedPlanner(private val inner: PlannerBackend, private val clock: () -> Long = System::nanoTime) : PlannerBackend {
    var visionNs = 0L
    var prefillNs = 0L
    var prefillTokens = 0
    var decodeNs = 0L
    var decodeTokens = 0
    private var prefilled = false

    override fun encodeImage(pixels: FloatArray): Rows = timed({ visionNs += it }) { inner.encodeImage(pixels) }

    override fun embed(ids: IntArray): Rows = timed({ if (prefilled) decodeNs += it }) { inner.embed(ids) }

    override fun reset() {
        inner.reset()
        prefilled = false
    }

    override fun decode(embeds: Rows): Decoded = timed({
        if (prefilled) {
            decodeNs += it
            decodeTokens += embeds.count
        } else {
            prefillNs += it
            prefillTokens += embeds.count
            prefilled = true
        }
    }) { inner.decode(embeds) }

    override fun latent(hidden3: List<FloatArray>, mask: FloatArray): FloatArray = inner.latent(hidden3, mask)

    fun prefillTokensPerS() = perSecond(prefillTokens, prefillNs)

    fun decodeTokensPerS() = perSecond(decodeTokens, decodeNs)

    private fun perSecond(tokens: Int, ns: Long) = if (ns > 0) tokens * 1e9 / ns else null

    private inline fun <T> timed(record: (Long) -> Unit, call: () -> T): T {
        val start = clock()
        val result = call()
        record(clock() - start)
        return result
    }
}

package vera.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.fail
import java.io.File

/** The fixtures recorded from a real bundle by scripts/make_app_fixtures.py (on the test classpath). */
object Fixtures {
    fun file(name: String): File {
        val url = Fixtures::class.java.getResource("/fixtures/$name") ?: throw AssertionError("missing fixture $name")
        return File(url.toURI())
    }

    fun json(name: String): Map<String, Any?> = Json.parse(file(name).readText(Charsets.UTF_8)).obj(name)

    val bundle: Bundle by lazy { Bundle.load(file("bundle")) }

    val manifest: Manifest get() = bundle.manifest

    fun request(json: Map<String, Any?>): Request = Request(
        manifest.prompts, json.str("mode"), json["prompt"] as String?,
        (json["params"] as Map<*, *>?)?.entries?.associate { it.key as String to (it.value as Double) }
    )
}

fun assertClose(expected: FloatArray, actual: FloatArray, tolerance: Float = 1e-5f) {
    assertArrayEquals(expected, actual, tolerance)
}

/**
 * Replays a recorded trace: each call the Python loop made to the real planner, in order. A call of
 * another kind or with other arguments fails the test, so the Kotlin loop must make the same calls.
 * Embeddings are stand-ins one value wide: a token's id, or -(1 + row) for image feature rows, so
 * what reaches `decode` shows which tokens were fed.
 */
class ReplayPlanner(trace: Map<String, Any?>) : PlannerBackend {
    private val calls = trace.list("calls").map { it.obj() }
    private val imageRows = trace.int("image_rows")
    private val promptIds = trace.list("prompt_ids").ints()
    private val imageIndex = Fixtures.manifest.prompts.imageTokenIndex
    private var next = 0
    private var lastEmbedded = IntArray(0)
    private var decodes = 0
    var hidden3: List<FloatArray>? = null

    private fun take(kind: String): Map<String, Any?> {
        if (next >= calls.size) fail("unexpected $kind call after the recorded ${calls.size}")
        val call = calls[next++]
        assertEquals("call #$next", call.str("call"), kind)
        return call
    }

    fun finished() = assertEquals("calls replayed", calls.size, next)

    override fun encodeImage(pixels: FloatArray): Rows =
        Rows(imageRows, 1, FloatArray(imageRows) { -(1f + it) })

    override fun embed(ids: IntArray): Rows {
        assertArrayEquals(take("embed").list("ids").ints(), ids)
        lastEmbedded = ids
        return Rows(ids.size, 1, FloatArray(ids.size) { ids[it].toFloat() })
    }

    override fun reset() {
        take("reset")
    }

    override fun decode(embeds: Rows): Decoded {
        val call = take("decode")
        assertEquals(call.int("length"), embeds.count)
        val expected = if (decodes++ == 0) prefillRows() else FloatArray(lastEmbedded.size) { lastEmbedded[it].toFloat() }
        assertArrayEquals(expected, embeds.data, 0f)
        val top = call.list("top_ids").ints()
        val logits = FloatArray(top.max()!! + 1) { Float.NEGATIVE_INFINITY }
        call.list("top_logits").floats().forEachIndexed { i, value -> logits[top[i]] = value }
        return Decoded(logits, call.list("hidden").floats())
    }

    override fun latent(hidden3: List<FloatArray>, mask: FloatArray): FloatArray {
        val call = take("latent")
        assertArrayEquals(call.list("mask").floats(), mask, 0f)
        this.hidden3 = hidden3
        return call.list("latent").floats()
    }

    /** The prompt as fed at prefill: ids, with the image index expanded to the image rows. */
    private fun prefillRows(): FloatArray = promptIds.toList().flatMap { id ->
        if (id == imageIndex) (0 until imageRows).map { -(1f + it) } else listOf(id.toFloat())
    }.toFloatArray()
}

/** Answers encode/decode exactly as recorded from the bundle's tokenizer; anything else fails. */
class ReplayTokenizer(trace: Map<String, Any?>) : Tokenizer {
    private val encodes = trace.obj("encodes").mapValues { it.value.list().ints() }
    private val decodes = (trace["decodes"] ?: emptyList<Any?>()).list().map { it.obj() }
    private val added = (trace["added_tokens"] as List<*>?)?.filterIsInstance<String>()

    override val addedTokens: List<String> get() = added ?: throw AssertionError("the fixture records no added tokens")

    override fun encode(text: String): IntArray = encodes[text] ?: throw AssertionError("unrecorded encode of '$text'")

    override fun decode(ids: List<Int>, skipSpecialTokens: Boolean): String = decodes.firstOrNull {
        it.list("ids").ints().toList() == ids && it["skip_special_tokens"] == skipSpecialTokens
    }?.str("text") ?: throw AssertionError("unrecorded decode of $ids (skip special: $skipSpecialTokens)")
}

package vera.core

import java.util.Random

/**
 * The generation loop, line for line the one in vera_mobile/runtime/generation.py: prefill, decode,
 * stop rules, the hidden state before each retouch token, forcing missing retouch tokens.
 *
 * A backend only says how to run each planner method; the loop decides which hidden states become
 * the control latent. That rule is upstream's: for each retouch token, the final-norm hidden state
 * at the position before its first occurrence, i.e. the state whose logits produced it. When
 * generation ends without all three, the missing ones are appended in latent order and gathered
 * by the same rule (upstream crashes instead).
 */

/** Rows of equal width, row-major: image features, token embeddings. */
class Rows(val count: Int, val width: Int, val data: FloatArray) {
    init {
        require(data.size == count * width) { "expected $count x $width values, got ${data.size}" }
    }

    fun row(i: Int): FloatArray = data.copyOfRange(i * width, (i + 1) * width)

    companion object {
        fun concat(parts: List<Rows>): Rows {
            val width = parts.first().width
            require(parts.all { it.width == width }) { "rows of different widths cannot be joined" }
            val data = FloatArray(parts.fold(0) { n, part -> n + part.data.size })
            var offset = 0
            for (part in parts) {
                System.arraycopy(part.data, 0, data, offset, part.data.size)
                offset += part.data.size
            }
            return Rows(data.size / width, width, data)
        }
    }
}

class Decoded(val logits: FloatArray, val hidden: FloatArray)

/** How one runtime runs the planner's methods (ExecuTorch on Android, Core ML on iOS, a replay in tests). */
interface PlannerBackend {
    fun encodeImage(pixels: FloatArray): Rows // [3, S, S] in [0, 1] -> [N, hidden]

    fun embed(ids: IntArray): Rows // [T] -> [T, hidden]

    fun reset() // start a new sequence (the K/V cache)

    fun decode(embeds: Rows): Decoded // [T, hidden] -> last position's logits and final-norm hidden state

    fun latent(hidden3: List<FloatArray>, mask: FloatArray): FloatArray // 3 x [hidden], [3] -> [3 * latent_dim]
}

/** The planner's tokenizer (HF tokenizer.json through a library on each platform). */
interface Tokenizer {
    fun encode(text: String): IntArray // no added special tokens (Qwen2 adds no BOS); control tokens match

    fun decode(ids: List<Int>, skipSpecialTokens: Boolean): String

    val addedTokens: List<String> // every string it maps to one id before BPE (tokenizer.json "added_tokens")
}

/** Ids for a chat prompt, the image index where each image token stood (tokenizer.py: encode_prompt). */
fun encodePrompt(tokenizer: Tokenizer, spec: PromptSpec, prompt: String): IntArray {
    val ids = ArrayList<Int>()
    // Each piece between placeholders is tokenized on its own, as upstream's tokenizer_image_token does.
    prompt.split(spec.imageToken).forEachIndexed { i, chunk ->
        if (i > 0) ids.add(spec.imageTokenIndex)
        ids.addAll(tokenizer.encode(chunk).toList())
    }
    return ids.toIntArray()
}

/**
 * Ids for a request's prompt, with the user's text tokenized as plain text: a `<|im_end|>` or
 * `<retouch_light>` typed in a style instruction becomes ordinary BPE pieces, never a control id,
 * and `<image>` never a second image slot.
 *
 * The tokenizer cuts its input at control tokens and runs BPE on the text between them, so the
 * plain stretch around the user's text (from the template's last control token before it to its
 * first one after it) is tokenized on its own and spliced in. For text without control-token
 * strings the ids are exactly those of [encodePrompt] on the whole prompt, i.e. upstream's.
 */
fun encodeRequest(tokenizer: Tokenizer, spec: PromptSpec, request: Request): IntArray {
    val parts = request.promptParts()
    val user = parts.user ?: return encodePrompt(tokenizer, spec, parts.before)
    val controls = tokenizer.addedTokens + spec.imageToken
    val head = controls.fold(0) { end, token ->
        val at = parts.before.lastIndexOf(token)
        if (at < 0) end else Math.max(end, at + token.length)
    }
    val tail = controls.fold(parts.after.length) { start, token ->
        val at = parts.after.indexOf(token)
        if (at < 0) start else Math.min(start, at)
    }
    val plain = parts.before.substring(head) + user + parts.after.substring(0, tail)
    return encodePrompt(tokenizer, spec, parts.before.substring(0, head)) + encodePlainText(tokenizer, plain, controls) +
        encodePrompt(tokenizer, spec, parts.after.substring(tail))
}

/**
 * [text] tokenized with no control token matched, through the tokenizer's ordinary encode: each
 * occurrence of a control string is cut after its first letter that a non-letter follows
 * ("<|im" | "_end|>"), which is always a boundary of the byte-level BPE pre-tokenizer (its
 * pieces never join a letter to a following symbol), so the ids equal plain-text tokenization.
 */
fun encodePlainText(tokenizer: Tokenizer, text: String, controls: Collection<String>): IntArray {
    val cuts = sortedSetOf(0, text.length)
    for (token in controls) {
        val inside = (1 until token.length).firstOrNull {
            Character.isLetter(token[it - 1]) && !Character.isLetter(token[it]) && !Character.isWhitespace(token[it])
        } ?: throw InputError("the tokenizer's control token '$token' has no letter-to-symbol boundary to cut at")
        var at = text.indexOf(token)
        while (at >= 0) {
            cuts.add(at + inside)
            at = text.indexOf(token, at + 1)
        }
    }
    val bounds = cuts.toList()
    return (0 until bounds.size - 1).flatMap { tokenizer.encode(text.substring(bounds[it], bounds[it + 1])).toList() }
        .toIntArray()
}

/** Embed the prompt, splicing the image features in where the image index stands. */
fun promptEmbeddings(backend: PlannerBackend, promptIds: IntArray, imageIndex: Int, imageFeatures: Rows?): Rows {
    val pieces = ArrayList<Rows>()
    val run = ArrayList<Int>()
    for (token in promptIds.toList() + listOf<Int?>(null)) {
        if (token == null || token == imageIndex) {
            if (run.isNotEmpty()) {
                pieces.add(backend.embed(run.toIntArray()))
                run.clear()
            }
            if (token == imageIndex) {
                pieces.add(imageFeatures ?: throw IllegalArgumentException(
                    "the prompt has an image placeholder but no image features were given"))
            }
        } else {
            run.add(token)
        }
    }
    return Rows.concat(pieces)
}

/** Greedy by default (deterministic); temperature > 0 samples with top-p and a seed. */
class SamplingOptions(
    val maxNewTokens: Int = 1024,
    val temperature: Double = 0.0,
    val topP: Double = 1.0,
    val seed: Long? = null
) {
    fun sampler(): (FloatArray) -> Int {
        if (temperature <= 0) return ::argmax
        val random = if (seed != null) Random(seed) else Random()
        return { logits -> sampleTopP(logits, temperature, topP, random) }
    }
}

/** The first index of the largest value (numpy's argmax). */
fun argmax(values: FloatArray): Int {
    var best = 0
    for (i in 1 until values.size) if (values[i] > values[best]) best = i
    return best
}

/** Sample from the smallest set of most likely tokens whose probability reaches topP. */
fun sampleTopP(logits: FloatArray, temperature: Double, topP: Double, random: Random): Int {
    val top = logits.fold(Float.NEGATIVE_INFINITY) { a, b -> Math.max(a, b) }.toDouble()
    val probs = DoubleArray(logits.size) { Math.exp((logits[it] - top) / temperature) }
    val total = probs.sum()
    val order = logits.indices.sortedByDescending { probs[it] } // stable, like numpy's kind="stable"
    var cumulative = 0.0
    var keep = 0
    while (keep < order.size) {
        cumulative += probs[order[keep]] / total
        keep++
        if (cumulative >= topP) break
    }
    val kept = order.subList(0, keep)
    var draw = random.nextDouble() * kept.fold(0.0) { sum, id -> sum + probs[id] }
    for (id in kept) {
        draw -= probs[id]
        if (draw < 0) return id
    }
    return kept.last()
}

class Generation(
    val tokenIds: List<Int>,
    val retouchHidden: List<FloatArray>, // states before the three retouch tokens, in latent order
    val forcedTokens: List<String>,
    val stopReason: String, // "eos" or "max_new_tokens"
    val promptLength: Int
)

/** Turns a growing list of ids into text pieces, holding back half-decoded UTF-8 characters. */
class TextStreamer(private val tokenizer: Tokenizer, private val callback: ((String) -> Unit)?) {
    private val ids = ArrayList<Int>()
    private var sent = ""

    fun push(tokenId: Int) {
        ids.add(tokenId)
        if (callback == null) return
        val text = tokenizer.decode(ids, true)
        if (text.endsWith("\ufffd")) return // a multi-byte character split over tokens: wait for the rest
        if (text.length > sent.length) callback.invoke(text.substring(sent.length))
        sent = text
    }
}

/**
 * Generate the reasoning and gather the three retouch hidden states. [retouchIds] and
 * [retouchTokens] are the manifest's ids and strings, in latent order.
 */
fun generate(
    backend: PlannerBackend,
    tokenizer: Tokenizer,
    promptEmbeds: Rows,
    eosIds: Set<Int>,
    retouchIds: List<Int>,
    retouchTokens: List<String>,
    options: SamplingOptions,
    onText: ((String) -> Unit)? = null,
    onStep: ((Int) -> Unit)? = null
): Generation {
    val sample = options.sampler()
    val streamer = TextStreamer(tokenizer, onText)
    val states = HashMap<Int, FloatArray>()
    val generated = ArrayList<Int>()

    backend.reset()
    var out = backend.decode(promptEmbeds)
    var stopReason = "max_new_tokens"
    while (generated.size < options.maxNewTokens) {
        val token = sample(out.logits)
        if (token in eosIds) {
            stopReason = "eos"
            break
        }
        if (token in retouchIds && token !in states) states[token] = out.hidden // the state whose logits produced it
        generated.add(token)
        streamer.push(token)
        onStep?.invoke(generated.size)
        if (generated.size < options.maxNewTokens) out = backend.decode(backend.embed(intArrayOf(token)))
    }

    val forced = ArrayList<String>()
    val missing = retouchIds.filter { it !in states }
    if (missing.isNotEmpty() && stopReason == "max_new_tokens" && generated.isNotEmpty()) {
        // The last sampled token was never fed back; feed it so the state is the one after it.
        out = backend.decode(backend.embed(intArrayOf(generated.last())))
    }
    missing.forEachIndexed { i, token ->
        states[token] = out.hidden
        generated.add(token)
        streamer.push(token)
        forced.add(retouchTokens[retouchIds.indexOf(token)])
        if (i + 1 < missing.size) out = backend.decode(backend.embed(intArrayOf(token)))
    }
    return Generation(generated, retouchIds.map { states.getValue(it) }, forced, stopReason, promptEmbeds.count)
}

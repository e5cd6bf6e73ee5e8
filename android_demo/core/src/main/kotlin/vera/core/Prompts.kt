package vera.core

import java.math.BigDecimal
import java.math.RoundingMode

/**
 * The manifest's prompt section: chat template, per-mode messages, special tokens, sliders, masks.
 * Mirrors vera_mobile/prompts.py, whose values the exporter copies here.
 */
class PromptSpec(json: Map<String, Any?>) {
    val chatTemplate = json.str("chat_template")
    val modeTemplates: Map<String, String> = json.obj("modes").mapValues { it.value as String }
    val imageToken = json.str("image_token")
    val imageTokenIndex = json.int("image_token_index")
    val retouchTokens = json.list("retouch_tokens").strings()
    val sectionTokens: Map<String, List<String>> = json.obj("section_tokens").mapValues { it.value.list().strings() }
    val addedTokens = json.list("added_tokens").strings() // every VeraRetouch token: each one closes a plan section
    /** The groups in the manifest's slider_group_order: the order of the param prompt and of the mask. */
    val sliderGroups: Map<String, List<String>> = orderedGroups(json)
    val sliderNames = sliderGroups.values.flatten()
    private val paramRules = json.obj("param_rules")
    val sliderLimit = paramRules.num("limit")
    val maskEpsilon = paramRules.num("mask_epsilon")
    private val masks = json.obj("masks")

    /** The fixed mask of a mode that has one (auto, style, reference); param mode's depends on the sliders. */
    fun fixedMask(mode: String): FloatArray = masks.list(mode).floats()

    private fun orderedGroups(json: Map<String, Any?>): Map<String, List<String>> {
        val groups = json.obj("slider_groups")
        val order = json.list("slider_group_order").strings()
        require(order.toSet() == groups.keys && order.size == groups.size) {
            "slider_group_order $order does not name each slider group once (${groups.keys})"
        }
        val ordered = LinkedHashMap<String, List<String>>()
        for (name in order) ordered[name] = groups.getValue(name).list().strings()
        return ordered
    }
}

/** A request's prompt around the user's own text: [user] is null when every character is the template's. */
class PromptParts(val before: String, val user: String?, val after: String)

class InputError(message: String) : Exception(message)

/** One retouch request, checked like prompts.Request: the mode plus whatever that mode needs. */
class Request(
    val spec: PromptSpec,
    val mode: String,
    val prompt: String? = null,
    val params: Map<String, Double>? = null
) {
    init {
        if (mode !in MODES) throw InputError("unknown mode '$mode'; choose one of: ${MODES.joinToString(", ")}")
        if (mode == "style" && prompt.isNullOrBlank()) {
            throw InputError("style mode needs a text instruction, e.g. 'I want a warm film look.'")
        }
        if (mode == "param") validateParams(params ?: throw InputError("param mode needs a slider set"))
    }

    /** Whether the planner prompt contains the image placeholder (not in param mode). */
    val usesImageTokens get() = mode == "auto" || mode == "style"

    fun userMessage(): String = when (mode) {
        "auto" -> template("auto")
        "style" -> template("style").replace("{prompt}", prompt!!)
        "param" -> template("param").replace("{params}", formatParams())
        else -> throw InputError("reference mode has no planner prompt; it uses the reference encoder")
    }

    /** The exact chat-formatted string the planner sees (byte-identical to Python's full_prompt()). */
    fun fullPrompt(): String = spec.chatTemplate.replace("{user}", userMessage())

    /**
     * The full prompt split where the user's style instruction sits, so that it can be tokenized as
     * plain text (see [encodeRequest]). Param mode's text is ours: slider names from the manifest, numbers.
     */
    fun promptParts(): PromptParts {
        if (mode != "style") return PromptParts(fullPrompt(), null, "")
        val (chatBefore, chatAfter) = splitOnce(spec.chatTemplate, "{user}")
        val (styleBefore, styleAfter) = splitOnce(template("style"), "{prompt}")
        return PromptParts(chatBefore + styleBefore, prompt!!, styleAfter + chatAfter)
    }

    private fun splitOnce(text: String, placeholder: String): Pair<String, String> {
        val parts = text.split(placeholder)
        if (parts.size != 2) throw InputError("the manifest's template must contain $placeholder exactly once")
        return parts[0] to parts[1]
    }

    /** Which of the three control latents are kept (1) or zeroed (0). */
    fun mask(): FloatArray {
        if (mode != "param") return spec.fixedMask(mode)
        return organized().values.map { group ->
            if (group.values.all { Math.abs(it.value) <= spec.maskEpsilon }) 0f else 1f
        }.toFloatArray()
    }

    private fun template(name: String) = spec.modeTemplates[name] ?: throw InputError("the manifest has no '$name' template")

    private fun validateParams(params: Map<String, Double>) {
        val unknown = params.keys.filter { it !in spec.sliderNames }.sorted()
        if (unknown.isNotEmpty()) {
            throw InputError("unknown slider name(s): ${unknown.joinToString(", ")}. Valid sliders are: ${spec.sliderNames.joinToString(", ")}")
        }
        for ((name, value) in params) {
            if (value.isNaN() || value.isInfinite()) throw InputError("slider $name: value must be finite, got $value")
            if (Math.abs(value) > spec.sliderLimit) throw InputError("slider $name: value $value is outside the range -100 .. 100")
        }
    }

    /** Every slider of every group, value / 100 rounded to 3 places as upstream does. */
    private fun organized(): Map<String, Map<String, PyFloat>> = spec.sliderGroups.mapValues { (_, names) ->
        names.associateWith { PyFloat.round3((params ?: emptyMap())[it] ?: 0.0) }
    }

    /** Python's str() of the grouped dict: single-quoted keys, repr floats. */
    private fun formatParams(): String = organized().entries.joinToString(", ", "{", "}") { (group, sliders) ->
        pyRepr(group) + ": " + sliders.entries.joinToString(", ", "{", "}") { (name, v) -> pyRepr(name) + ": " + v.repr }
    }

    companion object {
        val MODES = listOf("auto", "style", "param", "reference")
    }
}

/** A slider value as Python's round(value / 100, 3) leaves it, with Python's repr of that float. */
class PyFloat private constructor(val value: Double, val repr: String) {
    companion object {
        fun round3(slider: Double): PyFloat {
            val scaled = slider / 100.0
            // Python rounds the exact binary value half-to-even; BigDecimal(double) is that exact value.
            val decimal = BigDecimal(scaled).setScale(3, RoundingMode.HALF_EVEN)
            // A 3-decimal number's shortest round-trip form is itself without trailing zeros;
            // Python keeps the sign of a zero (round(-0.0001, 3) is -0.0) and writes "1.0", not "1".
            val negative = scaled < 0 || 1.0 / scaled < 0
            var digits = decimal.abs().stripTrailingZeros().toPlainString()
            if ('.' !in digits) digits += ".0"
            val value = decimal.toDouble()
            return PyFloat(if (negative && value == 0.0) -0.0 else value, (if (negative) "-" else "") + digits)
        }
    }
}

/** Python's repr() of a str, for the plain names the slider dict holds. */
fun pyRepr(text: String): String {
    val quote = if ('\'' in text && '"' !in text) '"' else '\''
    val body = StringBuilder()
    for (c in text) {
        when (c) {
            '\\' -> body.append("\\\\")
            '\n' -> body.append("\\n")
            '\r' -> body.append("\\r")
            '\t' -> body.append("\\t")
            quote -> body.append('\\').append(c)
            else -> body.append(c)
        }
    }
    return "$quote$body$quote"
}

package vera.core

/**
 * The planner's reasoning split into problems and plans per group (vera_mobile/plan.py).
 *
 * Tolerant like the Python parser: a section may be missing or lack its end token (it then ends
 * at the next marker or at the end), and text outside any section is kept as [other].
 */
class Plan(
    val sections: Map<String, String?>, // keyed by the manifest's section names, e.g. "problem_light"
    val other: String,
    val retouchTokens: List<String> // in the order they appear
)

/**
 * Split raw generated text (special tokens kept) into sections. Any marker closes the open section;
 * the markers are every VeraRetouch token the manifest lists (added_tokens), as in plan.py.
 */
fun parsePlan(rawText: String, spec: PromptSpec): Plan {
    val pattern = Regex(spec.addedTokens.sortedByDescending { it.length }.joinToString("|") { Regex.escape(it) })
    val starts = spec.sectionTokens.entries.associate { it.value[0] to it.key }
    val sections = LinkedHashMap<String, String?>()
    spec.sectionTokens.keys.forEach { sections[it] = null }
    val other = ArrayList<String>()
    val retouch = ArrayList<String>()
    var current: String? = null
    var position = 0
    val matches = pattern.findAll(rawText).toList()
    for (i in 0..matches.size) {
        val match = matches.getOrNull(i)
        val piece = rawText.substring(position, match?.range?.first ?: rawText.length)
        val open = current
        if (open != null) {
            sections[open] = ((sections[open] ?: "") + piece).trim()
        } else if (piece.isNotBlank()) {
            other.add(piece.trim())
        }
        if (match == null) break
        val marker = match.value
        position = match.range.last + 1
        current = starts[marker] // a start opens its section; any other marker closes the open one
        if (current != null && sections[current] == null) sections[current] = ""
        if (marker in spec.retouchTokens) retouch.add(marker)
    }
    return Plan(sections, other.joinToString("\n"), retouch)
}

package vera.core

/**
 * Photo + instruction in, reasoning + control latent out: the planner half of Retoucher._plan in
 * vera_mobile/runtime/retoucher.py, on whatever backend the platform provides.
 */
class PlanResult(
    val generation: Generation,
    val latent: FloatArray,
    val mask: FloatArray,
    val rawText: String, // special tokens kept
    val text: String, // what upstream saves: special tokens removed, stripped
    val plan: Plan
)

class Planner(val manifest: Manifest, val backend: PlannerBackend, val tokenizer: Tokenizer) {
    /**
     * [pixels] is the planner view ([3, S, S] in [0, 1]); param mode does not need it (its prompt
     * has no image placeholder, so upstream's image features would be dropped anyway).
     */
    fun plan(
        request: Request,
        pixels: FloatArray?,
        options: SamplingOptions = SamplingOptions(),
        onText: ((String) -> Unit)? = null,
        onStep: ((Int) -> Unit)? = null
    ): PlanResult {
        val prompts = manifest.prompts
        val features = if (request.usesImageTokens) {
            backend.encodeImage(pixels ?: throw InputError("${request.mode} mode needs the photo's planner view"))
        } else {
            null
        }
        val promptIds = encodeRequest(tokenizer, prompts, request)
        val embeds = promptEmbeddings(backend, promptIds, prompts.imageTokenIndex, features)
        val generation = generate(
            backend, tokenizer, embeds, manifest.tokenizer.eosIds, manifest.tokenizer.retouchTokenIds,
            prompts.retouchTokens, options, onText, onStep
        )
        val mask = request.mask()
        val latent = backend.latent(generation.retouchHidden, mask)
        val rawText = tokenizer.decode(generation.tokenIds, false)
        return PlanResult(
            generation, latent, mask, rawText, tokenizer.decode(generation.tokenIds, true).trim(),
            parsePlan(rawText, prompts)
        )
    }

    /**
     * The control latent of [result] with every group kept, what [Rerender] starts from: the latent
     * itself when the request kept every group, otherwise one more (tiny) retouch-head call.
     */
    fun unmaskedLatent(result: PlanResult): FloatArray {
        if (result.mask.all { it == 1f }) return result.latent
        return backend.latent(result.generation.retouchHidden, FloatArray(Rerender.GROUPS) { 1f })
    }
}

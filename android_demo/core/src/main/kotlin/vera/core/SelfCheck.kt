package vera.core

/**
 * Replays the bundle's golden vectors on the device's runtime (vera_mobile/runtime/selfcheck.py):
 * a wrong file, preprocessing constant or miscompiled kernel shows up here, before a user's photo.
 *
 * Inputs are rebuilt from the same formulas the exporter used; outputs are compared to the
 * recorded ones with |got - want| <= tolerance * max(1, max |want|).
 */
object SelfCheck {
    /** pixels[c, y, x] = ((7x + 13y + 29c) mod 256) / 255, shape [3, size, size]. */
    fun goldenPixels(size: Int): FloatArray = FloatArray(3 * size * size) { i ->
        val c = i / (size * size)
        val y = (i / size) % size
        val x = i % size
        (((7 * x + 13 * y + 29 * c) % 256) / 255.0).toFloat()
    }

    /** hidden3[i, j] = sin(0.01 * (j + 1) * (i + 1)), shape [3, hidden]. */
    fun goldenHidden3(hidden: Int): List<FloatArray> =
        (0 until 3).map { i -> FloatArray(hidden) { j -> Math.sin(0.01 * (j + 1) * (i + 1)).toFloat() } }

    /** A problem description, or null when [got] is within tolerance of [want]. */
    fun compare(name: String, got: FloatArray, want: FloatArray, tolerance: Double): String? {
        if (got.size != want.size) return "$name: ${got.size} values, expected ${want.size}"
        var error = 0.0
        var scale = 1.0
        for (i in got.indices) {
            error = Math.max(error, Math.abs(got[i].toDouble() - want[i]))
            scale = Math.max(scale, Math.abs(want[i].toDouble()))
        }
        return if (error > tolerance * scale) "$name: max difference $error exceeds $tolerance x $scale" else null
    }

    /** Replay a planner record: tensors of each method, then the greedy generation trace. */
    fun checkPlanner(backend: PlannerBackend, tokenizer: Tokenizer, manifest: Manifest, golden: Map<String, Any?>): List<String> {
        val tolerance = golden.num("tolerance")
        val rowValues = golden.obj("vision_encoder").list("first_row").size
        val problems = ArrayList<String?>()
        val features = backend.encodeImage(goldenPixels(manifest.imageSize))
        val vision = golden.obj("vision_encoder")
        problems.add(compare("vision_encoder.first_row", features.row(0).copyOf(rowValues), vision.list("first_row").floats(), tolerance))
        problems.add(compare("vision_encoder.last_row", features.row(features.count - 1).copyOf(rowValues), vision.list("last_row").floats(), tolerance))
        problems.add(compare("vision_encoder.mean", floatArrayOf(features.data.average().toFloat()), floatArrayOf(vision.num("mean").toFloat()), tolerance))
        val embedding = golden.obj("token_embedding")
        val rows = backend.embed(embedding.list("input_ids").ints())
        embedding.list("rows").forEachIndexed { i, want ->
            problems.add(compare("token_embedding.rows[$i]", rows.row(i).copyOf(rowValues), want.list().floats(), tolerance))
        }
        val head = golden.obj("retouch_head")
        val latent = backend.latent(goldenHidden3(manifest.hiddenSize), head.list("mask").floats())
        problems.add(compare("retouch_head.latent", latent, head.list("latent").floats(), tolerance))
        problems.addAll(checkGeneration(backend, tokenizer, manifest, golden, features))
        return problems.filterNotNull()
    }

    /** The greedy auto-mode trace: same prompt ids, same tokens, same retouch states (float programs only). */
    fun checkGeneration(
        backend: PlannerBackend,
        tokenizer: Tokenizer,
        manifest: Manifest,
        golden: Map<String, Any?>,
        features: Rows
    ): List<String> {
        val record = golden.obj("generation")
        val prompts = manifest.prompts
        val promptIds = encodeRequest(tokenizer, prompts, Request(prompts, "auto"))
        if (!promptIds.contentEquals(record.list("prompt_ids").ints())) {
            return listOf("generation: the prompt tokenizes differently from the recorded ids")
        }
        val embeds = promptEmbeddings(backend, promptIds, prompts.imageTokenIndex, features)
        val trace = generate(
            backend, tokenizer, embeds, manifest.tokenizer.eosIds, manifest.tokenizer.retouchTokenIds,
            prompts.retouchTokens, SamplingOptions(maxNewTokens = record.int("max_new_tokens"))
        )
        if (golden["tokens_must_match"] != true) return emptyList()
        val recorded = record.list("token_ids").ints().toList()
        if (trace.tokenIds != recorded) return listOf("generation: greedy tokens ${trace.tokenIds}, recorded $recorded")
        return record.list("retouch_hidden").mapIndexedNotNull { i, want ->
            val values = want.list().floats()
            compare("generation.retouch_hidden[$i]", trace.retouchHidden[i].copyOf(values.size), values, golden.num("tolerance"))
        }
    }

    /** Replay the renderer record: condition, then the first points of a (padded) tile. */
    fun checkRenderer(backend: RendererBackend, golden: Map<String, Any?>): List<String> {
        val tolerance = golden.num("tolerance")
        val condition = golden.obj("condition")
        val biases = backend.condition(condition.list("latent").floats(), condition.list("mask").floats())
        val points = golden.obj("render_points").list("points").flatMap { it.list() }.floats()
        val colors = Lut.renderFlat(backend, points, biases, points.size / 3)
        val want = golden.obj("render_points").list("colors").flatMap { it.list() }.floats()
        return listOfNotNull(
            compare("condition.biases", biases, condition.list("biases").floats(), tolerance),
            compare("render_points.colors", colors, want, tolerance)
        )
    }
}

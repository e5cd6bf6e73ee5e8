package vera.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test
import java.util.Random

/** The Kotlin loop replays real ExecuTorch traces and must reach Python's results call for call. */
class GenerationTest {
    private fun replay(name: String) {
        val trace = Fixtures.json("$name.json")
        val expected = trace.obj("expected")
        val manifest = Fixtures.manifest
        val request = Fixtures.request(trace.obj("request"))
        val backend = ReplayPlanner(trace)
        val tokenizer = ReplayTokenizer(trace)
        val streamed = ArrayList<String>()

        // The trace may name other eos / retouch ids than the manifest (see make_app_fixtures.py),
        // so this drives the steps of Planner.plan with the trace's ids.
        val features = if (request.usesImageTokens) backend.encodeImage(SelfCheck.goldenPixels(manifest.imageSize)) else null
        val promptIds = encodePrompt(tokenizer, manifest.prompts, request.fullPrompt())
        assertArrayEquals(trace.list("prompt_ids").ints(), promptIds)
        val embeds = promptEmbeddings(backend, promptIds, manifest.prompts.imageTokenIndex, features)
        val generation = generate(
            backend, tokenizer, embeds, trace.list("eos_ids").ints().toSet(), trace.list("retouch_ids").ints().toList(),
            trace.list("retouch_tokens").strings(), SamplingOptions(maxNewTokens = trace.int("max_new_tokens")),
            onText = { streamed.add(it) }
        )
        val latentCall = backend.latent(generation.retouchHidden, request.mask())
        val rawText = tokenizer.decode(generation.tokenIds, false)
        backend.finished()

        assertEquals(expected.list("token_ids").ints().toList(), generation.tokenIds)
        assertEquals(expected.list("forced_tokens").strings(), generation.forcedTokens)
        assertEquals(expected.str("stop_reason"), generation.stopReason)
        assertEquals(expected.int("prompt_length"), generation.promptLength)
        expected.list("retouch_hidden").forEachIndexed { i, row -> assertClose(row.list().floats(), generation.retouchHidden[i]) }
        assertEquals(expected.list("streamed").strings(), streamed)
        assertEquals(expected.str("raw_text"), rawText)
        assertEquals(expected.str("text"), tokenizer.decode(generation.tokenIds, true).trim())
        assertArrayEquals(expected.list("mask").floats(), request.mask(), 0f)
        assertEquals(calls(trace, "latent").single().list("latent").floats().toList(), latentCall.toList())
        PlanTest.assertPlan(expected.obj("plan"), parsePlan(rawText, manifest.prompts))
    }

    private fun calls(trace: Map<String, Any?>, kind: String) =
        trace.list("calls").map { it.obj() }.filter { it["call"] == kind }

    @Test fun goldenTraceForcesAllThreeAfterMaxNewTokens() = replay("trace_golden")

    @Test fun generatedRetouchTokenTakesTheStateBeforeIt() = replay("trace_style")

    @Test fun eosAtOnceForcesAllThree() = replay("trace_eos")

    @Test fun paramModeHasNoImage() = replay("trace_param")

    @Test fun plannerRunsTheSameStepsWithTheManifestIds() {
        for (name in listOf("trace_golden", "trace_param")) {
            val trace = Fixtures.json("$name.json")
            val backend = ReplayPlanner(trace)
            val planner = Planner(Fixtures.manifest, backend, ReplayTokenizer(trace))
            val request = Fixtures.request(trace.obj("request"))
            val result = planner.plan(request, SelfCheck.goldenPixels(Fixtures.manifest.imageSize),
                SamplingOptions(maxNewTokens = trace.int("max_new_tokens")))
            backend.finished()
            assertEquals(trace.obj("expected").list("token_ids").ints().toList(), result.generation.tokenIds)
            assertEquals(trace.obj("expected").str("text"), result.text)
        }
    }

    @Test fun selfCheckAcceptsTheGoldenTraceAndCatchesAnotherToken() {
        val trace = Fixtures.json("trace_golden.json")
        val golden = Fixtures.manifest.golden("planner", "executorch")!!
        val features = Rows(trace.int("image_rows"), 1, FloatArray(trace.int("image_rows")) { -(1f + it) })
        val ok = SelfCheck.checkGeneration(ReplayPlanner(trace), ReplayTokenizer(trace), Fixtures.manifest, golden, features)
        assertEquals(emptyList<String>(), ok)

        val generation = golden.obj("generation").toMutableMap()
        generation["token_ids"] = listOf(1.0) + generation.list("token_ids").drop(1)
        val altered = golden.toMutableMap().also { it["generation"] = generation }
        val problems = SelfCheck.checkGeneration(ReplayPlanner(trace), ReplayTokenizer(trace), Fixtures.manifest, altered, features)
        assertEquals(1, problems.size)
    }

    @Test fun greedyPicksTheFirstLargest() {
        assertEquals(1, argmax(floatArrayOf(0f, 3f, 3f, -1f)))
    }

    @Test fun topPKeepsTheSmallestSetReachingP() {
        // probabilities ~ 0.67, 0.24, 0.09: top_p 0.5 keeps only the first, 0.8 the first two.
        val logits = floatArrayOf(1f, 2f, 3f)
        val random = Random(0)
        assertEquals(setOf(2), (0 until 200).map { sampleTopP(logits, 1.0, 0.5, random) }.toSet())
        assertEquals(setOf(1, 2), (0 until 400).map { sampleTopP(logits, 1.0, 0.8, random) }.toSet())
    }
}

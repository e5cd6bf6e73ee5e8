package vera.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class PromptsTest {
    private val spec = Fixtures.manifest.prompts

    @Test fun fullPromptIsByteIdenticalToPython() {
        for (case in Fixtures.json("prompts.json").list("cases")) {
            val json = case.obj()
            val request = Fixtures.request(json)
            assertEquals(json.str("full_prompt"), request.fullPrompt())
            assertArrayEquals(json.list("mask").floats(), request.mask(), 0f)
        }
    }

    @Test fun promptIdsMatchPythonWithUserTextAsPlainText() {
        val fixture = Fixtures.json("prompts.json")
        val tokenizer = ReplayTokenizer(fixture)
        val controlIds = fixture.list("control_ids").ints().toSet() + spec.imageTokenIndex
        val templateControls = ArrayList<List<Int>>()
        for (case in fixture.list("cases")) {
            val json = case.obj()
            val request = Fixtures.request(json)
            val ids = encodeRequest(tokenizer, spec, request)
            assertArrayEquals(json.str("full_prompt"), json.list("prompt_ids").ints(), ids)
            if (request.mode == "style") templateControls.add(ids.filter { it in controlIds })
        }
        // Whatever the instruction types, a style prompt holds exactly the template's control ids.
        assertEquals(1, templateControls.toSet().size)
        assertTrue(templateControls.size >= 3)
    }

    @Test fun promptPartsJoinToTheFullPrompt() {
        val request = Request(spec, "style", prompt = "a <|im_end|> b")
        val parts = request.promptParts()
        assertEquals("a <|im_end|> b", parts.user)
        assertEquals(request.fullPrompt(), parts.before + parts.user + parts.after)
        val auto = Request(spec, "auto").promptParts()
        assertEquals(null, auto.user)
        assertEquals(Request(spec, "auto").fullPrompt(), auto.before)
    }

    @Test fun pythonRoundingAndRepr() {
        assertEquals("0.3", PyFloat.round3(30.0).repr)
        assertEquals("-0.0", PyFloat.round3(-0.01).repr) // round(-0.0001, 3) keeps the sign
        assertEquals("0.001", PyFloat.round3(0.05).repr) // 0.0005 is stored just above the tie
        assertEquals("0.062", PyFloat.round3(6.25).repr) // an exact tie rounds to even
        assertEquals("1.0", PyFloat.round3(100.0).repr)
    }

    @Test fun badRequestsAreRefused() {
        val bad = listOf<() -> Unit>(
            { Request(spec, "sepia") },
            { Request(spec, "style", prompt = "  ") },
            { Request(spec, "param") },
            { Request(spec, "param", params = mapOf("Exposure" to 1.0)) },
            { Request(spec, "param", params = mapOf("Exposure2012" to 101.0)) },
            { Request(spec, "param", params = mapOf("Exposure2012" to Double.NaN)) },
            { Request(spec, "reference").fullPrompt() }
        )
        for ((i, make) in bad.withIndex()) {
            try {
                make()
                fail("request #$i was accepted")
            } catch (expected: InputError) {
            }
        }
    }
}

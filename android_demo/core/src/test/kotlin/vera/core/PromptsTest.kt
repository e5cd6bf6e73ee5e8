package vera.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
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

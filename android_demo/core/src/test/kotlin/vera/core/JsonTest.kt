package vera.core

import org.junit.Assert.assertEquals
import org.junit.Assert.fail
import org.junit.Test

class JsonTest {
    @Test fun parsesValuesAndKeepsKeyOrder() {
        val value = Json.parse("""{"b": [1, -2.5e1, true, null], "a": "x\"\u00e9\n\/", "c": {}}""").obj()
        assertEquals(listOf("b", "a", "c"), value.keys.toList())
        assertEquals(listOf(1.0, -25.0, true, null), value["b"])
        assertEquals("x\"é\n/", value["a"])
    }

    @Test fun writesWhatItReads() {
        val value = linkedMapOf("name" to "tab\there", "n" to 3, "x" to 0.25, "list" to listOf(null, false))
        assertEquals("""{"name": "tab\there", "n": 3, "x": 0.25, "list": [null, false]}""", Json.write(value))
        assertEquals(Json.parse(Json.write(value)), Json.parse("""{"name": "tab\there", "n": 3.0, "x": 0.25, "list": [null, false]}"""))
    }

    @Test fun rejectsBrokenJson() {
        for (text in listOf("{", "[1,]", "{\"a\" 1}", "\"open", "1 2", "tru")) {
            try {
                Json.parse(text)
                fail("parsed '$text'")
            } catch (expected: IllegalArgumentException) {
            }
        }
    }
}

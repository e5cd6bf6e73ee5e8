package vera.core

import org.junit.Assert.assertEquals
import org.junit.Test

class PlanTest {
    @Test fun matchesPythonParsePlan() {
        for (case in Fixtures.json("plans.json").list("cases")) {
            val json = case.obj()
            assertPlan(json.obj("plan"), parsePlan(json.str("raw_text"), Fixtures.manifest.prompts))
        }
    }

    companion object {
        /** Compare with Plan.to_dict(): one key per section, plus other and retouch_tokens. */
        fun assertPlan(expected: Map<String, Any?>, plan: Plan) {
            for ((name, text) in plan.sections) assertEquals(name, expected[name], text)
            assertEquals(expected.str("other"), plan.other)
            assertEquals(expected.list("retouch_tokens").strings(), plan.retouchTokens)
            assertEquals(expected.keys, plan.sections.keys + setOf("other", "retouch_tokens"))
        }
    }
}

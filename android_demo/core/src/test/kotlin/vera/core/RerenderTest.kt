package vera.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.fail
import org.junit.Test

/** Re-rendering replays the real renderer's answers and must reach the blends numpy computed. */
class RerenderTest {
    private val fixture = Fixtures.json("rerender.json")
    private val size = fixture.int("grid_size")
    private val latent = fixture.list("latent").floats()
    private val cases = fixture.list("cases").map { it.obj() }

    private fun flat(case: Map<String, Any?>, key: String) = case.list(key).flatMap { it.list() }.floats()

    /** condition() answers the recorded biases of the mask it is given; render_points the baked LUT of those biases. */
    private inner class ReplayRenderer : RendererBackend {
        override val tile: Int? = null
        val masks = ArrayList<List<Float>>()

        override fun condition(latent: FloatArray, mask: FloatArray): FloatArray {
            assertArrayEquals("the unmasked latent", this@RerenderTest.latent, latent, 0f)
            masks.add(mask.toList())
            val case = cases.firstOrNull { it.list("mask").floats().contentEquals(mask) }
                ?: throw AssertionError("unrecorded mask ${mask.toList()}")
            return case.list("biases").floats()
        }

        override fun renderPoints(points: FloatArray, biases: FloatArray): FloatArray {
            val grid = Lut.grid(size)
            assertArrayEquals(FloatArray(grid.size) { (grid[it] - 0.5f) * 2f }, points, 0f)
            val case = cases.first { it.list("biases").floats().contentEquals(biases) }
            return flat(case, "edit")
        }
    }

    @Test fun groupsAndStrengthGiveNumpysBlend() {
        for (case in cases) {
            val groups = case.list("groups").map { it as Boolean }.toBooleanArray()
            val renderer = ReplayRenderer()
            val lut = Rerender.lut(renderer, latent, groups, case.num("strength"), size, 65536)
            assertEquals(listOf(case.list("mask").floats().toList()), renderer.masks)
            assertArrayEquals("groups ${groups.toList()} strength ${case.num("strength")}", flat(case, "lut"), lut, 0f)
        }
    }

    @Test fun endStrengthsAreTheEditAndTheIdentity() {
        val edit = flat(cases.first(), "edit")
        assertArrayEquals(edit, Rerender.blend(edit, size, 1.0), 0f)
        assertArrayEquals(Lut.grid(size), Rerender.blend(edit, size, 0.0), 0f)
    }

    @Test fun badGroupsOrStrengthAreRefused() {
        val edit = flat(cases.first(), "edit")
        val bad = listOf<() -> Unit>(
            { Rerender.blend(edit, size, 1.5) },
            { Rerender.blend(edit, size, -0.1) },
            { Rerender.blend(edit, size, Double.NaN) },
            { Rerender.mask(booleanArrayOf(true, false)) }
        )
        for ((i, call) in bad.withIndex()) {
            try {
                call()
                fail("call #$i was accepted")
            } catch (expected: InputError) {
            }
        }
    }

    @Test fun unmaskedLatentReusesAFullMaskAndAsksTheHeadOtherwise() {
        val asked = ArrayList<List<Float>>()
        val backend = object : PlannerBackend {
            override fun encodeImage(pixels: FloatArray) = throw AssertionError("no vision")
            override fun embed(ids: IntArray) = throw AssertionError("no embedding")
            override fun reset() = throw AssertionError("no decoding")
            override fun decode(embeds: Rows) = throw AssertionError("no decoding")
            override fun latent(hidden3: List<FloatArray>, mask: FloatArray): FloatArray {
                asked.add(mask.toList())
                return floatArrayOf(7f, 8f, 9f)
            }
        }
        val planner = Planner(Fixtures.manifest, backend, ReplayTokenizer(Fixtures.json("prompts.json")))
        val generation = Generation(emptyList(), List(3) { floatArrayOf(0f) }, emptyList(), "eos", 0)
        fun result(mask: FloatArray, latent: FloatArray) =
            PlanResult(generation, latent, mask, "", "", parsePlan("", Fixtures.manifest.prompts))
        assertArrayEquals(floatArrayOf(1f, 2f, 3f), planner.unmaskedLatent(result(floatArrayOf(1f, 1f, 1f), floatArrayOf(1f, 2f, 3f))), 0f)
        assertEquals(emptyList<List<Float>>(), asked)
        assertArrayEquals(floatArrayOf(7f, 8f, 9f), planner.unmaskedLatent(result(floatArrayOf(1f, 0f, 0f), floatArrayOf(1f, 0f, 0f))), 0f)
        assertEquals(listOf(listOf(1f, 1f, 1f)), asked)
    }
}

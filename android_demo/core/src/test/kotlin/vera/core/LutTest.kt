package vera.core

import org.junit.Assert.assertEquals
import org.junit.Test

class LutTest {
    private val fixture = Fixtures.json("lut.json")

    @Test fun gridOrderIsRedFastest() {
        val expected = fixture.list("grid").flatMap { it.list() }.floats()
        assertClose(expected, Lut.grid(fixture.int("grid_size")), 0f)
    }

    @Test fun cubeTextIsByteIdenticalToPython() {
        val lut = fixture.list("lut").flatMap { it.list() }.floats()
        assertEquals(fixture.str("cube"), Lut.cube(lut, fixture.int("grid_size"), fixture.str("title")))
    }

    @Test fun fixedShapeProgramsGetPaddedTiles() {
        val seen = ArrayList<Int>()
        val backend = object : RendererBackend {
            override val tile: Int? = 4
            override fun condition(latent: FloatArray, mask: FloatArray) = floatArrayOf()
            override fun renderPoints(points: FloatArray, biases: FloatArray): FloatArray {
                seen.add(points.size / 3)
                return FloatArray(points.size) { points[it] / 2f + 0.5f } // [-1, 1] back to [0, 1]
            }
        }
        val lut = Lut.bake(backend, floatArrayOf(), 2, 65536)
        assertEquals(listOf(4, 4), seen) // 8 grid points in two full tiles
        assertClose(Lut.grid(2), lut, 1e-6f)
        val pixels = intArrayOf(0xff102030.toInt(), 0x80ffffff.toInt(), 0, 0x7f7f7f, 0x01020304)
        val rendered = Lut.renderPixels(backend, pixels, floatArrayOf(), floatArrayOf(), 65536)
        assertEquals(pixels.toList(), rendered.toList()) // identity renderer: every pixel and alpha kept
        assertEquals(listOf(4, 4, 4, 4), seen) // five pixels: one full tile, one padded
    }
}

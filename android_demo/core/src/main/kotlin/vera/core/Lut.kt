package vera.core

import java.math.BigDecimal
import java.math.RoundingMode

/**
 * Rendering orchestration: the renderer programs run in fixed-size tiles, either over a LUT grid
 * (lut mode: bake once, apply on the GPU) or over every pixel of the photo (exact mode).
 * Mirrors vera_mobile/runtime/render.py and vera_mobile/lut.py.
 *
 * LUT layout: [S^3, 3] floats, row r + S*g + S*S*b holds the output for input (r, g, b) / (S - 1):
 * red fastest, then green, then blue, which is the `.cube` line order and the order a 3D texture
 * with x = red, y = green, z = blue is uploaded in.
 */
interface RendererBackend {
    val tile: Int? // the fixed number of points render_points takes, or null for any

    fun condition(latent: FloatArray, mask: FloatArray): FloatArray // [3L], [3] -> biases

    fun renderPoints(points: FloatArray, biases: FloatArray): FloatArray // [T*3] in [-1, 1] -> [T*3] in [0, 1]
}

object Lut {
    /** The [size^3 * 3] input colours in [0, 1], red fastest, then green, then blue. */
    fun grid(size: Int): FloatArray {
        require(size in 2..65) { "LUT size must be between 2 and 65, got $size" }
        // i / (size - 1) in double, then one rounding to float: the end points are exactly 0 and 1.
        val axis = FloatArray(size) { (it.toDouble() / (size - 1)).toFloat() }
        val out = FloatArray(size * size * size * 3)
        var k = 0
        for (b in 0 until size) for (g in 0 until size) for (r in 0 until size) {
            out[k++] = axis[r]
            out[k++] = axis[g]
            out[k++] = axis[b]
        }
        return out
    }

    /** Sample the conditioned renderer on the grid: the baked LUT, [size^3 * 3] floats. */
    fun bake(backend: RendererBackend, biases: FloatArray, size: Int, tile: Int): FloatArray {
        // The same float32 steps as the renderer's pixel input, so a grid colour equal to a pixel
        // value reaches the renderer as exactly the same number.
        val points = grid(size)
        for (i in points.indices) points[i] = (points[i] - 0.5f) * 2f
        return renderFlat(backend, points, biases, tile)
    }

    /** Run render_points over [N*3] points in tiles; a fixed-shape program gets its last tile padded. */
    fun renderFlat(backend: RendererBackend, points: FloatArray, biases: FloatArray, tile: Int): FloatArray {
        val step = backend.tile ?: tile
        val out = FloatArray(points.size)
        var start = 0
        while (start < points.size / 3) {
            val count = Math.min(step, points.size / 3 - start)
            val chunk = FloatArray((backend.tile ?: count) * 3) // zero padding after the real points
            System.arraycopy(points, start * 3, chunk, 0, count * 3)
            val colors = backend.renderPoints(chunk, biases)
            System.arraycopy(colors, 0, out, start * 3, count * 3)
            start += count
        }
        return out
    }

    /**
     * Exact mode: every pixel through the renderer, one tile at a time (render.py: render_pixels).
     * [argb] are packed 8-bit pixels (Android's Bitmap.getPixels layout); alpha is kept.
     */
    fun renderPixels(
        backend: RendererBackend,
        argb: IntArray,
        latent: FloatArray,
        mask: FloatArray,
        tile: Int,
        progress: ((Int) -> Unit)? = null
    ): IntArray {
        val biases = backend.condition(latent, mask)
        val step = backend.tile ?: tile
        val out = IntArray(argb.size)
        var start = 0
        while (start < argb.size) {
            val count = Math.min(step, argb.size - start)
            val points = FloatArray(count * 3)
            for (i in 0 until count) {
                val p = argb[start + i]
                points[3 * i] = rendererInput((p shr 16) and 0xff)
                points[3 * i + 1] = rendererInput((p shr 8) and 0xff)
                points[3 * i + 2] = rendererInput(p and 0xff)
            }
            val colors = renderFlat(backend, points, biases, step)
            for (i in 0 until count) {
                val alpha = argb[start + i] and (0xff shl 24)
                out[start + i] = alpha or (toByte(colors[3 * i]) shl 16) or (toByte(colors[3 * i + 1]) shl 8) or
                    toByte(colors[3 * i + 2])
            }
            start += count
            progress?.invoke(count)
        }
        return out
    }

    /** (v / 255 - 0.5) * 2 in float32 steps, as views.renderer_input. */
    fun rendererInput(value: Int): Float = (value.toFloat() / 255f - 0.5f) * 2f

    /** clip, scale, round half to even (photo_io.to_pixels, 8 bit). */
    fun toByte(value: Float): Int = Math.rint((Math.min(Math.max(value, 0f), 1f) * 255f).toDouble()).toInt()

    /** The LUT as an Adobe/Resolve `.cube` text, byte-identical to lut.write_cube. */
    fun cube(lut: FloatArray, size: Int, title: String): String {
        require(lut.size == size * size * size * 3) { "a size-$size LUT has ${size * size * size * 3} values, got ${lut.size}" }
        require('"' !in title && '\n' !in title && '\r' !in title) { "a .cube title cannot contain quotes or line breaks" }
        val out = StringBuilder("TITLE \"$title\"\nLUT_3D_SIZE $size\nDOMAIN_MIN 0.0 0.0 0.0\nDOMAIN_MAX 1.0 1.0 1.0\n")
        for (i in 0 until size * size * size) {
            out.append(fixed8(lut[3 * i])).append(' ').append(fixed8(lut[3 * i + 1])).append(' ')
                .append(fixed8(lut[3 * i + 2])).append('\n')
        }
        return out.toString()
    }

    /** Python's "{:.8f}": the exact binary value rounded half-even, and a minus sign even on zero. */
    private fun fixed8(value: Float): String {
        val d = value.toDouble()
        require(!d.isNaN() && !d.isInfinite()) { "the LUT contains NaN or infinite values" }
        val digits = BigDecimal(Math.abs(d)).setScale(8, RoundingMode.HALF_EVEN).toPlainString()
        return if (d < 0 || 1.0 / d < 0) "-$digits" else digits
    }
}

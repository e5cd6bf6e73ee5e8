package vera.core

/**
 * Re-render a finished retouch without running the planner again, as the Python result's
 * `rerender(groups=..., strength=...)` does: the renderer is conditioned on the cached unmasked
 * control latent with any of the three control groups turned off, and an overall strength blends
 * the edit's colour function with the identity on the LUT grid (an editor's "amount"):
 *
 *     out = identity + strength * (edit - identity)
 *
 * A LUT bake is milliseconds, so sliders and toggles can re-render live.
 */
object Rerender {
    /** The groups in latent order, as named in the manifest's slider_group_order. */
    const val GROUPS = 3

    /** The renderer's group mask: 1 keeps a group's latent slice (light, global colour, specific colour), 0 zeroes it. */
    fun mask(groups: BooleanArray): FloatArray {
        if (groups.size != GROUPS) {
            throw InputError("groups needs one flag per control group (lighting, global colour, specific colour), got ${groups.size}")
        }
        return FloatArray(GROUPS) { if (groups[it]) 1f else 0f }
    }

    /** The baked [edit] LUT blended with the identity LUT by [strength] in [0, 1], in float32 steps as numpy takes them. */
    fun blend(edit: FloatArray, size: Int, strength: Double): FloatArray {
        if (strength.isNaN() || strength < 0 || strength > 1) throw InputError("strength must be between 0 and 1, got $strength")
        val identity = Lut.grid(size)
        require(edit.size == identity.size) { "a size-$size LUT has ${identity.size} values, got ${edit.size}" }
        if (strength == 1.0) return edit.copyOf() // exactly the edit, so a full-strength re-render equals a fresh retouch
        val amount = strength.toFloat()
        return FloatArray(edit.size) { identity[it] + amount * (edit[it] - identity[it]) }
    }

    /** The LUT for [groups] and [strength]: condition on [unmaskedLatent] with the groups' mask, bake, blend. */
    fun lut(
        backend: RendererBackend,
        unmaskedLatent: FloatArray,
        groups: BooleanArray,
        strength: Double,
        size: Int,
        tile: Int
    ): FloatArray {
        val edit = Lut.bake(backend, backend.condition(unmaskedLatent, mask(groups)), size, tile)
        return blend(edit, size, strength)
    }
}

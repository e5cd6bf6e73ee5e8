import Foundation

/// Re-render a finished retouch without running the planner again (Rerender.kt; the Python result's
/// `rerender(groups:strength:)`): condition the renderer on the cached unmasked control latent with some
/// of the three control groups off, then blend the baked LUT with the identity by a strength,
/// out = identity + strength * (edit - identity).
public enum Rerender {
    /// The renderer's group mask in latent order (light, global colour, specific colour): 1 keeps a slice, 0 zeroes it.
    public static func mask(_ groups: [Bool]) throws -> [Float] {
        guard groups.count == 3 else {
            throw InputError(description: "groups needs one flag per control group (lighting, global colour, specific colour), got \(groups.count)")
        }
        return groups.map { $0 ? 1 : 0 }
    }

    /// The baked `edit` LUT blended with the identity by `strength` in [0, 1], in float32 steps as numpy takes them.
    public static func blend(_ edit: [Float], size: Int, strength: Double) throws -> [Float] {
        guard strength >= 0, strength <= 1 else { throw InputError(description: "strength must be between 0 and 1, got \(strength)") }
        let identity = Lut.grid(size)
        guard edit.count == identity.count else { throw InputError(description: "a size-\(size) LUT has \(identity.count) values, got \(edit.count)") }
        if strength == 1 { return edit } // exactly the edit, so a full-strength re-render equals a fresh retouch
        let amount = Float(strength)
        return zip(identity, edit).map { base, value in base + amount * (value - base) }
    }

    /// The LUT for `groups` and `strength`: condition on `unmaskedLatent` with the groups' mask, bake, blend.
    public static func lut(_ backend: RendererBackend, unmaskedLatent: [Float], groups: [Bool], strength: Double, size: Int) throws -> [Float] {
        let biases = try backend.condition(latent: unmaskedLatent, mask: try mask(groups))
        return try blend(try Lut.bake(backend, biases: biases, size: size), size: size, strength: strength)
    }
}

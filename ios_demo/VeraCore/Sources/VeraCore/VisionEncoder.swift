/// The planner's vision encoder, loaded apart from its language model (VisionEncoder.kt); dropping the
/// last reference releases it. Loaded, it holds its weights and its activations, the planner's largest at full size.
public protocol VisionEncoder {
    func encode(_ pixels: [Float]) throws -> Rows // [3, S, S] in [0, 1] -> [N, hidden]
}

/// When the vision encoder is loaded (VisionEncoder.kt: VisionEncoderLoader), as the Python runtime's
/// bundle planners decide ("Memory" under Bundles in README.md). Not `resident`: each `encode` loads
/// one with `load` and drops it before returning, so it is never loaded while the language model decodes.
/// `resident`: the first one stays loaded as long as the loader, faster for many photos at the cost of memory.
public final class VisionEncoderLoader {
    public let resident: Bool
    private let load: () throws -> VisionEncoder
    private var loaded: VisionEncoder?

    public init(resident: Bool, load: @escaping () throws -> VisionEncoder) {
        self.resident = resident
        self.load = load
    }

    public func encode(_ pixels: [Float]) throws -> Rows {
        let encoder = try loaded ?? load()
        if resident { loaded = encoder }
        return try encoder.encode(pixels)
    }
}

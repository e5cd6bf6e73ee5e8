import Foundation

/// How one runtime runs the renderer programs (Core ML in the app).
public protocol RendererBackend {
    var tile: Int { get } // the fixed number of points render_points takes
    func condition(latent: [Float], mask: [Float]) throws -> [Float]
    func renderPoints(_ points: [Float], biases: [Float]) throws -> [Float] // [T*3] in [-1, 1] -> [0, 1]
}

/// LUT orchestration (vera_mobile/lut.py): [S^3 * 3] floats, red fastest, then green, then blue —
/// the `.cube` order and the order CIColorCubeWithColorSpace reads (with an alpha added).
public enum Lut {
    public static func grid(_ size: Int) -> [Float] {
        let axis = (0 ..< size).map { Float(Double($0) / Double(size - 1)) }
        var out: [Float] = []
        out.reserveCapacity(size * size * size * 3)
        for b in 0 ..< size { for g in 0 ..< size { for r in 0 ..< size { out += [axis[r], axis[g], axis[b]] } } }
        return out
    }

    /// The renderer sampled on the grid, in tiles padded to the program's fixed size.
    public static func bake(_ backend: RendererBackend, biases: [Float], size: Int) throws -> [Float] {
        let points = grid(size).map { ($0 - 0.5) * 2 } // the renderer's pixel input, same float steps
        var out: [Float] = []
        var start = 0
        while start < points.count {
            let count = min(backend.tile * 3, points.count - start)
            var chunk = Array(points[start ..< start + count])
            chunk += [Float](repeating: 0, count: backend.tile * 3 - count)
            out += try backend.renderPoints(chunk, biases: biases).prefix(count)
            start += count
        }
        return out
    }

    /// Float RGBA cube data for CIColorCubeWithColorSpace.
    public static func rgba(_ lut: [Float]) -> [Float] {
        stride(from: 0, to: lut.count, by: 3).flatMap { [lut[$0], lut[$0 + 1], lut[$0 + 2], 1] }
    }

    /// The `.cube` text, byte-identical to lut.write_cube ("%.8f" rounds the exact value half to even, as Python).
    public static func cube(_ lut: [Float], size: Int, title: String) -> String {
        var text = "TITLE \"\(title)\"\nLUT_3D_SIZE \(size)\nDOMAIN_MIN 0.0 0.0 0.0\nDOMAIN_MAX 1.0 1.0 1.0\n"
        for i in stride(from: 0, to: lut.count, by: 3) {
            text += String(format: "%.8f %.8f %.8f\n", Double(lut[i]), Double(lut[i + 1]), Double(lut[i + 2]))
        }
        return text
    }
}

import CoreGraphics
import CoreImage
import CoreImage.CIFilterBuiltins
import UIKit
import VeraCore

/// Photo views and LUT application (vera_mobile/views.py and lut.py on Apple's frameworks).
enum Images {
    static let sRGB = CGColorSpace(name: CGColorSpace.sRGB)!
    static let context = CIContext()

    /// Decode with EXIF orientation applied once and colours converted to sRGB.
    static func upright(_ data: Data) -> CGImage? {
        guard let image = UIImage(data: data) else { return nil }
        let format = UIGraphicsImageRendererFormat()
        format.scale = 1
        format.preferredRange = .standard // 8-bit sRGB
        return UIGraphicsImageRenderer(size: image.size, format: format).image { _ in image.draw(at: .zero) }.cgImage
    }

    /// RGBA8 sRGB pixels of `image` drawn at `width` x `height` (high-quality resampling).
    static func rgba(_ image: CGImage, width: Int, height: Int, at origin: CGPoint = .zero, canvas: (Int, Int)? = nil) -> [UInt8] {
        let (w, h) = canvas ?? (width, height)
        var pixels = [UInt8](repeating: 0, count: w * h * 4)
        pixels.withUnsafeMutableBytes { buffer in
            let ctx = CGContext(data: buffer.baseAddress, width: w, height: h, bitsPerComponent: 8, bytesPerRow: w * 4,
                                space: sRGB, bitmapInfo: CGImageAlphaInfo.premultipliedLast.rawValue)!
            ctx.setFillColor(CGColor(red: 0, green: 0, blue: 0, alpha: 1))
            ctx.fill(CGRect(x: 0, y: 0, width: w, height: h)) // black padding
            ctx.interpolationQuality = .high
            ctx.draw(image, in: CGRect(x: origin.x, y: CGFloat(h) - origin.y - CGFloat(height), width: CGFloat(width), height: CGFloat(height)))
        }
        return pixels
    }

    /// Planner input [3, S, S] in [0, 1]: short side to the manifest's short_side (long side bounded by
    /// max_long_side), centred on a black square, resized to the model's size (two resamplings, as upstream).
    static func plannerView(_ image: CGImage, manifest: Manifest) -> [Float] {
        let (w, h) = manifest.plannerView.resizedSize(width: image.width, height: image.height)
        let side = max(w, h)
        let square = rgba(image, width: w, height: h, at: CGPoint(x: (side - w) / 2, y: (side - h) / 2), canvas: (side, side))
        let squareImage = CGImage(width: side, height: side, bitsPerComponent: 8, bitsPerPixel: 32, bytesPerRow: side * 4, space: sRGB,
                                  bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.premultipliedLast.rawValue),
                                  provider: CGDataProvider(data: Data(square) as CFData)!, decode: nil, shouldInterpolate: true,
                                  intent: .defaultIntent)!
        return chw(rgba(squareImage, width: manifest.imageSize, height: manifest.imageSize), bgr: false) { $0 / 255 }
    }

    /// Reference-encoder input: squashed to the manifest's size, its channel order, [-1, 1].
    static func referenceView(_ image: CGImage, manifest: Manifest) -> [Float] {
        let reference = (manifest.json["preprocessing"] as? [String: Any])?["reference"] as? [String: Any] ?? [:]
        let size = reference["size"] as? Int ?? 512
        return chw(rgba(image, width: size, height: size), bgr: reference["channel_order"] as? String == "BGR") { $0 / 255 * 2 - 1 }
    }

    private static func chw(_ rgba: [UInt8], bgr: Bool, scale: (Float) -> Float) -> [Float] {
        let n = rgba.count / 4
        let channels = bgr ? [2, 1, 0] : [0, 1, 2]
        var out = [Float](repeating: 0, count: 3 * n)
        for c in 0 ..< 3 { for i in 0 ..< n { out[c * n + i] = scale(Float(rgba[4 * i + channels[c]])) } }
        return out
    }

    /// The baked LUT applied by Core Image (GPU), in sRGB-encoded values like the renderer.
    static func applyLut(_ image: CGImage, lut: [Float], size: Int) -> CGImage? {
        let filter = CIFilter.colorCubeWithColorSpace()
        filter.inputImage = CIImage(cgImage: image)
        filter.cubeDimension = Float(size)
        filter.cubeData = Lut.rgba(lut).withUnsafeBufferPointer { Data(buffer: $0) }
        filter.colorSpace = sRGB
        guard let output = filter.outputImage else { return nil }
        return context.createCGImage(output, from: output.extent, format: .RGBA8, colorSpace: sRGB)
    }

    /// Exact mode: every pixel through the renderer, one tile at a time (render.py: render_pixels).
    static func renderExact(_ image: CGImage, renderer: RendererBackend, latent: [Float], mask: [Float]) throws -> CGImage {
        var pixels = rgba(image, width: image.width, height: image.height)
        let biases = try renderer.condition(latent: latent, mask: mask)
        let count = pixels.count / 4
        var start = 0
        while start < count {
            let n = min(renderer.tile, count - start)
            var points = [Float](repeating: 0, count: renderer.tile * 3) // padded to the program's tile
            for i in 0 ..< n { for c in 0 ..< 3 { points[3 * i + c] = (Float(pixels[4 * (start + i) + c]) / 255 - 0.5) * 2 } }
            let colors = try renderer.renderPoints(points, biases: biases)
            for i in 0 ..< n { for c in 0 ..< 3 { pixels[4 * (start + i) + c] = UInt8((min(max(colors[3 * i + c], 0), 1) * 255).rounded(.toNearestOrEven)) } }
            start += n
        }
        return CGImage(width: image.width, height: image.height, bitsPerComponent: 8, bitsPerPixel: 32, bytesPerRow: image.width * 4,
                       space: sRGB, bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.premultipliedLast.rawValue),
                       provider: CGDataProvider(data: Data(pixels) as CFData)!, decode: nil, shouldInterpolate: false, intent: .defaultIntent)!
    }
}

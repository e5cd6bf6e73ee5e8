import CoreGraphics
import Foundation
import VeraCore

/// Benchmark mode (launch argument -benchmark): the fixed inputs of VeraCore.Benchmark through Core
/// ML and Core Image, one result file in benchmarks/device_result.schema.json, in Documents.
extension Engine {
    func benchmark() throws -> URL {
        typealias Runner = BenchmarkRunner
        let pixels = SelfCheck.goldenPixels(manifest.imageSize)
        _ = try planner.encodeImage(pixels) // warm-up: first predictions load the model onto the device
        // Unless the engine is resident, this includes loading and releasing the vision encoder, as each photo does.
        let visionMs = try Runner.millis { _ = try planner.encodeImage(pixels) }
        let features = try planner.encodeImage(pixels)

        let spec = manifest.prompts
        let ids = try encodeRequest(tokenizer, spec: spec, request: try Request(spec: spec, mode: "auto"))
        let embeds = try promptEmbeddings(planner, promptIds: ids, imageIndex: spec.imageTokenIndex, features: features)
        try planner.reset()
        var out = try planner.decode(embeds) // warm-up, then the timed prefill
        try planner.reset()
        let prefillMs = try Runner.millis { out = try planner.decode(embeds) }
        var token = argmax(out.logits), decoded = 0
        let decodeMs = try Runner.millis { // greedy decode of the fixed number of tokens, embed + decode each
            for _ in 0 ..< Benchmark.decodeTokens {
                out = try planner.decode(try planner.embed([token]))
                token = argmax(out.logits)
                decoded += 1
            }
        }

        let golden = manifest.golden("renderer")?["condition"] as? [String: Any] ?? [:]
        let size = manifest.renderer["lut_size"] as? Int ?? 33
        var lut: [Float] = []
        let bakeMs = try Runner.millis {
            let biases = try renderer.condition(latent: (golden["latent"] as? [Double] ?? []).map(Float.init),
                                                mask: (golden["mask"] as? [Double] ?? []).map(Float.init))
            lut = try Lut.bake(renderer, biases: biases, size: size)
        }
        let photo = Runner.patternPhoto()
        _ = Images.applyLut(photo, lut: lut, size: size) // warm-up: kernel compilation
        let applyMs = try Runner.millis { _ = Images.applyLut(photo, lut: lut, size: size) }

        let result = Benchmark.result(
            tool: "vera-mobile ios demo", version: Bundle.main.infoDictionary?["CFBundleShortVersionString"] as? String ?? "unknown",
            device: ["name": Runner.deviceModel(), "os": "iOS \(ProcessInfo.processInfo.operatingSystemVersionString)"],
            backend: "coreml", recipe: (manifest.artifact("planner", "coreml")?["recipe"] as? String) ?? "unknown",
            metrics: ["vision_ms": visionMs, "prefill_tokens_per_s": Double(embeds.count) / prefillMs * 1000,
                      "decode_tokens_per_s": Double(decoded) / decodeMs * 1000, "lut_bake_ms": bakeMs,
                      "lut_apply_12mp_ms": applyMs, "peak_memory_mb": Runner.peakMemoryMb()],
            details: ["prefill_tokens": embeds.count, "decode_tokens": decoded, "lut_size": size, "resident": planner.vision.resident,
                      "lut_apply": "Core Image (GPU)"])
        let url = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0].appendingPathComponent("vera-benchmark.json")
        try JSONSerialization.data(withJSONObject: result, options: [.prettyPrinted, .sortedKeys]).write(to: url, options: .atomic)
        return url
    }
}

enum BenchmarkRunner {
    static func patternPhoto() -> CGImage {
        let (w, h) = (Benchmark.applyWidth, Benchmark.applyHeight)
        var bytes = [UInt8](repeating: 255, count: w * h * 4)
        for y in 0 ..< h { for x in 0 ..< w {
            let (r, g, b) = Benchmark.applyPixel(x: x, y: y)
            let i = 4 * (y * w + x)
            (bytes[i], bytes[i + 1], bytes[i + 2]) = (r, g, b)
        } }
        return CGImage(width: w, height: h, bitsPerComponent: 8, bitsPerPixel: 32, bytesPerRow: w * 4, space: Images.sRGB,
                       bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.premultipliedLast.rawValue),
                       provider: CGDataProvider(data: Data(bytes) as CFData)!, decode: nil, shouldInterpolate: false, intent: .defaultIntent)!
    }

    static func deviceModel() -> String {
        var info = utsname()
        uname(&info)
        return withUnsafeBytes(of: &info.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } // e.g. "iPhone16,1"
    }

    /// Peak physical footprint of the process (what iOS's memory limit counts).
    static func peakMemoryMb() -> Double? {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<natural_t>.size)
        let status = withUnsafeMutablePointer(to: &info) {
            $0.withMemoryRebound(to: integer_t.self, capacity: Int(count)) { task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count) }
        }
        return status == KERN_SUCCESS ? Double(info.ledger_phys_footprint_peak) / 1_048_576 : nil
    }

    static func millis(_ block: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try block()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    }
}

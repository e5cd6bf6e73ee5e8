import Foundation

/// Golden-vector replay and the fixed benchmark inputs (vera_mobile/runtime/selfcheck.py).
public enum SelfCheck {
    /// pixels[c, y, x] = ((7x + 13y + 29c) mod 256) / 255, shape [3, size, size].
    public static func goldenPixels(_ size: Int) -> [Float] {
        (0 ..< 3 * size * size).map { i in
            let (c, y, x) = (i / (size * size), (i / size) % size, i % size)
            return Float(Double((7 * x + 13 * y + 29 * c) % 256) / 255.0)
        }
    }

    /// A problem, or nil when |got - want| <= tolerance * max(1, max |want|).
    public static func compare(_ name: String, _ got: [Float], _ want: [Float], tolerance: Double) -> String? {
        guard got.count == want.count else { return "\(name): \(got.count) values, expected \(want.count)" }
        let error = zip(got, want).map { abs(Double($0) - Double($1)) }.max() ?? 0
        let scale = max(1, want.map { abs(Double($0)) }.max() ?? 0)
        return error > tolerance * scale ? "\(name): max difference \(error) exceeds \(tolerance) x \(scale)" : nil
    }

    /// The greedy auto-mode trace of a planner golden record: same prompt ids, tokens and retouch states.
    public static func checkGeneration(_ backend: PlannerBackend, tokenizer: TextTokenizer, manifest: Manifest,
                                       golden: [String: Any], features: Rows) throws -> [String] {
        guard let record = golden["generation"] as? [String: Any] else { return ["golden record has no generation"] }
        let spec = manifest.prompts
        let ids = try encodeRequest(tokenizer, spec: spec, request: try Request(spec: spec, mode: "auto"))
        guard ids == record["prompt_ids"] as? [Int] else { return ["generation: the prompt tokenizes differently from the recorded ids"] }
        let embeds = try promptEmbeddings(backend, promptIds: ids, imageIndex: spec.imageTokenIndex, features: features)
        let trace = try generate(backend, tokenizer: tokenizer, promptEmbeds: embeds, eosIds: manifest.eosIds,
                                 retouchIds: manifest.retouchTokenIds, retouchTokens: spec.retouchTokens,
                                 maxNewTokens: record["max_new_tokens"] as? Int ?? 0)
        guard golden["tokens_must_match"] as? Bool == true else { return [] } // fp16 / quantized programs
        let recorded = record["token_ids"] as? [Int] ?? []
        guard trace.tokenIds == recorded else { return ["generation: greedy tokens \(trace.tokenIds), recorded \(recorded)"] }
        let tolerance = golden["tolerance"] as? Double ?? 0
        return (record["retouch_hidden"] as? [[Double]] ?? []).enumerated().compactMap { i, want in
            compare("generation.retouch_hidden[\(i)]", Array(trace.retouchHidden[i].prefix(want.count)), want.map(Float.init),
                    tolerance: tolerance)
        }
    }

    /// The renderer golden record: condition, then the first points of a padded tile.
    public static func checkRenderer(_ backend: RendererBackend, golden: [String: Any]) throws -> [String] {
        guard let condition = golden["condition"] as? [String: Any], let render = golden["render_points"] as? [String: Any]
        else { return ["golden record has no condition / render_points"] }
        let floats = { (value: Any?) in ((value as? [Double]) ?? ((value as? [[Double]])?.flatMap { $0 } ?? [])).map(Float.init) }
        let biases = try backend.condition(latent: floats(condition["latent"]), mask: floats(condition["mask"]))
        let points = floats(render["points"])
        let padded = points + [Float](repeating: 0, count: backend.tile * 3 - points.count)
        let colors = Array(try backend.renderPoints(padded, biases: biases).prefix(points.count))
        let tolerance = golden["tolerance"] as? Double ?? 0
        return [compare("condition.biases", biases, floats(condition["biases"]), tolerance: tolerance),
                compare("render_points.colors", colors, floats(render["colors"]), tolerance: tolerance)].compactMap { $0 }
    }
}

/// The phone benchmark's result document, in benchmarks/device_result.schema.json (as Benchmark.kt).
public enum Benchmark {
    public static let decodeTokens = 64
    public static let applyWidth = 4000
    public static let applyHeight = 3000

    /// The 12 MP benchmark photo's pixel (r, g, b), the same pattern on every platform.
    public static func applyPixel(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        (UInt8((7 * x) & 255), UInt8((13 * y) & 255), UInt8((x + y) & 255))
    }

    public static func result(tool: String, version: String, device: [String: String], backend: String, recipe: String,
                              metrics: [String: Double?], details: [String: Any]) -> [String: Any] {
        let keys = ["vision_ms", "prefill_tokens_per_s", "decode_tokens_per_s", "lut_bake_ms", "lut_apply_12mp_ms", "peak_memory_mb"]
        return [
            "schema_version": 1, "tool": ["name": tool, "version": version],
            "date": ISO8601DateFormatter().string(from: Date()), "device": device, "backend": backend, "recipe": recipe,
            "metrics": Dictionary(uniqueKeysWithValues: keys.map { ($0, (metrics[$0] ?? nil).map { $0 as Any } ?? NSNull()) }),
            "details": details,
        ]
    }
}

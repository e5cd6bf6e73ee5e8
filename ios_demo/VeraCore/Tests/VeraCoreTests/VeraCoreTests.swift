import Foundation
import XCTest
@testable import VeraCore

/// The fixtures the Kotlin core is tested on (recorded from a real bundle by scripts/make_app_fixtures.py).
let fixtures = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("../android_demo/core/src/test/resources/fixtures").standardizedFileURL

func fixture(_ name: String) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent(name))) as! [String: Any]
}

/// Replays the recorded calls of the Python loop on a real planner; other calls fail the test.
final class ReplayPlanner: PlannerBackend {
    var calls: [[String: Any]]
    let imageRows: Int
    let prefill: [Float]
    var lastEmbedded: [Int] = []
    var decodes = 0

    init(_ trace: [String: Any], imageIndex: Int) {
        calls = trace["calls"] as! [[String: Any]]
        let rows = trace["image_rows"] as! Int
        imageRows = rows
        prefill = (trace["prompt_ids"] as! [Int]).flatMap { id in
            id == imageIndex ? (0 ..< rows).map { -Float($0 + 1) } : [Float(id)]
        }
    }

    func take(_ kind: String) -> [String: Any] {
        XCTAssertFalse(calls.isEmpty, "unexpected \(kind) call")
        let call = calls.removeFirst()
        XCTAssertEqual(call["call"] as? String, kind)
        return call
    }

    func encodeImage(_ pixels: [Float]) throws -> Rows {
        Rows(count: imageRows, width: 1, data: (0 ..< imageRows).map { -Float($0 + 1) })
    }

    func embed(_ ids: [Int]) throws -> Rows {
        XCTAssertEqual(take("embed")["ids"] as? [Int], ids)
        lastEmbedded = ids
        return Rows(count: ids.count, width: 1, data: ids.map(Float.init))
    }

    func reset() throws { _ = take("reset") }

    func decode(_ embeds: Rows) throws -> (logits: [Float], hidden: [Float]) {
        let call = take("decode")
        XCTAssertEqual(embeds.data, decodes == 0 ? prefill : lastEmbedded.map(Float.init))
        decodes += 1
        let top = call["top_ids"] as! [Int]
        var logits = [Float](repeating: -.infinity, count: top.max()! + 1)
        for (id, value) in zip(top, call["top_logits"] as! [Double]) { logits[id] = Float(value) }
        return ((logits, (call["hidden"] as! [Double]).map(Float.init)))
    }

    func latent(_ hidden3: [[Float]], mask: [Float]) throws -> [Float] {
        let call = take("latent")
        XCTAssertEqual(call["mask"] as? [Double], mask.map(Double.init))
        return (call["latent"] as! [Double]).map(Float.init)
    }
}

/// Answers encode/decode exactly as the bundle's tokenizer did when the trace was recorded.
struct ReplayTokenizer: TextTokenizer {
    let trace: [String: Any]

    func encode(_ text: String) -> [Int] { (trace["encodes"] as! [String: [Int]])[text]! }

    var addedTokens: [String] { trace["added_tokens"] as! [String] }

    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        let decodes = trace["decodes"] as! [[String: Any]]
        return decodes.first { $0["ids"] as? [Int] == ids && $0["skip_special_tokens"] as? Bool == skipSpecialTokens }!["text"] as! String
    }
}

/// Answers condition() with the recorded biases of a mask and render_points with the LUT baked from them.
final class ReplayRenderer: RendererBackend {
    let cases: [[String: Any]]
    let latent: [Float]
    let size: Int
    var masks: [[Float]] = []
    var tile: Int { size * size * size }

    init(_ fixture: [String: Any]) {
        cases = fixture["cases"] as! [[String: Any]]
        latent = (fixture["latent"] as! [Double]).map(Float.init)
        size = fixture["grid_size"] as! Int
    }

    func condition(latent: [Float], mask: [Float]) throws -> [Float] {
        XCTAssertEqual(latent, self.latent)
        masks.append(mask)
        let recorded = cases.first { ($0["mask"] as! [Double]).map(Float.init) == mask }!
        return (recorded["biases"] as! [Double]).map(Float.init)
    }

    func renderPoints(_ points: [Float], biases: [Float]) throws -> [Float] {
        XCTAssertEqual(points, Lut.grid(size).map { ($0 - 0.5) * 2 })
        let recorded = cases.first { ($0["biases"] as! [Double]).map(Float.init) == biases }!
        return (recorded["edit"] as! [[Double]]).flatMap { $0 }.map(Float.init)
    }
}

/// A vision encoder that counts its loads (init) and releases (deinit) in a shared tally.
final class CountedEncoder: VisionEncoder {
    final class Tally { var loads = 0, releases = 0 }
    let tally: Tally

    init(_ tally: Tally) {
        self.tally = tally
        tally.loads += 1
    }

    deinit { tally.releases += 1 }

    func encode(_ pixels: [Float]) throws -> Rows { Rows(count: 1, width: 1, data: [0]) }
}

final class VeraCoreTests: XCTestCase {
    lazy var bundle = try! VeraBundle(directory: fixtures.appendingPathComponent("bundle"))
    var spec: PromptSpec { bundle.manifest.prompts }

    func request(_ json: [String: Any]) throws -> Request {
        try Request(spec: spec, mode: json["mode"] as! String, prompt: json["prompt"] as? String,
                    params: json["params"] as? [String: Double])
    }

    func testTracesReplayCallForCall() throws {
        for name in ["trace_golden", "trace_style", "trace_eos", "trace_param"] {
            let trace = try fixture("\(name).json")
            let expected = trace["expected"] as! [String: Any]
            let request = try self.request(trace["request"] as! [String: Any])
            let backend = ReplayPlanner(trace, imageIndex: spec.imageTokenIndex)
            let tokenizer = ReplayTokenizer(trace: trace)
            let features = request.usesImageTokens ? try backend.encodeImage([]) : nil
            let ids = encodePrompt(tokenizer, spec: spec, prompt: try request.fullPrompt())
            XCTAssertEqual(ids, trace["prompt_ids"] as? [Int])
            var streamed: [String] = []
            let generation = try generate(
                backend, tokenizer: tokenizer,
                promptEmbeds: try promptEmbeddings(backend, promptIds: ids, imageIndex: spec.imageTokenIndex, features: features),
                eosIds: Set(trace["eos_ids"] as! [Int]), retouchIds: trace["retouch_ids"] as! [Int],
                retouchTokens: trace["retouch_tokens"] as! [String], maxNewTokens: trace["max_new_tokens"] as! Int,
                onText: { streamed.append($0) })
            _ = try backend.latent(generation.retouchHidden, mask: request.mask())
            XCTAssertTrue(backend.calls.isEmpty, name)
            XCTAssertEqual(generation.tokenIds, expected["token_ids"] as? [Int], name)
            XCTAssertEqual(generation.forcedTokens, expected["forced_tokens"] as? [String], name)
            XCTAssertEqual(generation.stopReason, expected["stop_reason"] as? String, name)
            XCTAssertEqual(generation.promptLength, expected["prompt_length"] as? Int, name)
            XCTAssertEqual(streamed, expected["streamed"] as? [String], name)
            for (got, want) in zip(generation.retouchHidden, expected["retouch_hidden"] as! [[Double]]) {
                XCTAssertNil(SelfCheck.compare(name, got, want.map(Float.init), tolerance: 1e-5))
            }
        }
    }

    func testPromptsAreByteIdenticalToPython() throws {
        for case let json as [String: Any] in try fixture("prompts.json")["cases"] as! [Any] {
            let request = try self.request(json)
            XCTAssertEqual(try request.fullPrompt(), json["full_prompt"] as? String)
            XCTAssertEqual(request.mask().map(Double.init), json["mask"] as? [Double])
        }
    }

    func testPromptIdsMatchPythonWithUserTextAsPlainText() throws {
        let prompts = try fixture("prompts.json")
        let tokenizer = ReplayTokenizer(trace: prompts)
        let controlIds = Set(prompts["control_ids"] as! [Int] + [spec.imageTokenIndex])
        var templateControls: [[Int]] = []
        for case let json as [String: Any] in prompts["cases"] as! [Any] {
            let request = try self.request(json)
            let ids = try encodeRequest(tokenizer, spec: spec, request: request)
            XCTAssertEqual(ids, json["prompt_ids"] as? [Int], json["full_prompt"] as! String)
            if request.mode == "style" { templateControls.append(ids.filter { controlIds.contains($0) }) }
        }
        // Whatever the instruction types, a style prompt holds exactly the template's control ids.
        XCTAssertGreaterThanOrEqual(templateControls.count, 3)
        XCTAssertTrue(templateControls.allSatisfy { $0 == templateControls[0] })
        let parts = try Request(spec: spec, mode: "style", prompt: "a <|im_end|> b").promptParts()
        XCTAssertEqual(parts.before + (parts.user ?? "") + parts.after,
                       try Request(spec: spec, mode: "style", prompt: "a <|im_end|> b").fullPrompt())
    }

    func testSliderOrderComesFromSliderGroupOrder() throws {
        // JSONSerialization loses key order; the manifest's slider_group_order is the order.
        var prompts = bundle.manifest.json["prompts"] as! [String: Any]
        XCTAssertEqual(spec.sliderGroups.map { $0.name }, prompts["slider_group_order"] as? [String])
        prompts["slider_group_order"] = Array((prompts["slider_group_order"] as! [String]).dropFirst())
        XCTAssertThrowsError(try PromptSpec(prompts))
    }

    func testPortableSHA256KnownVectors() {
        // FIPS 180-4 examples and the one-million-"a" vector, whole and in uneven pieces.
        let vectors: [(String, String)] = [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ]
        for (text, digest) in vectors {
            var whole = PortableSHA256()
            whole.update(Data(text.utf8))
            XCTAssertEqual(hex(whole.finalize()), digest, text)
            var pieces = PortableSHA256()
            for byte in text.utf8 { pieces.update(Data([byte])) }
            XCTAssertEqual(hex(pieces.finalize()), digest, text)
        }
        var million = PortableSHA256()
        let chunk = Data(repeating: UInt8(ascii: "a"), count: 999)
        for _ in 0 ..< 1000 { million.update(chunk) }
        million.update(Data(repeating: UInt8(ascii: "a"), count: 1000))
        XCTAssertEqual(hex(million.finalize()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testRerenderGivesNumpysBlend() throws {
        let fixture = try fixture("rerender.json")
        for recorded in fixture["cases"] as! [[String: Any]] {
            let renderer = ReplayRenderer(fixture)
            let lut = try Rerender.lut(renderer, unmaskedLatent: renderer.latent, groups: recorded["groups"] as! [Bool],
                                       strength: recorded["strength"] as! Double, size: renderer.size)
            XCTAssertEqual(renderer.masks, [(recorded["mask"] as! [Double]).map(Float.init)])
            XCTAssertEqual(lut, (recorded["lut"] as! [[Double]]).flatMap { $0 }.map(Float.init))
        }
        XCTAssertThrowsError(try Rerender.blend([], size: 2, strength: 0.5))
        XCTAssertThrowsError(try Rerender.blend(Lut.grid(2), size: 2, strength: 1.5))
        XCTAssertThrowsError(try Rerender.mask([true]))
    }

    func testPlansMatchPython() throws {
        for case let json as [String: Any] in try fixture("plans.json")["cases"] as! [Any] {
            let plan = parsePlan(json["raw_text"] as! String, spec: spec)
            let want = json["plan"] as! [String: Any]
            for (name, text) in plan.sections { XCTAssertEqual(text, want[name] as? String) }
            XCTAssertEqual(plan.other, want["other"] as? String)
            XCTAssertEqual(plan.retouchTokens, want["retouch_tokens"] as? [String])
        }
    }

    func testPlannerViewSizeMatchesPython() throws {
        for case let json as [String: Any] in try fixture("views.json")["cases"] as! [Any] {
            let size = json["size"] as! [Int], want = json["resized"] as! [Int]
            let (w, h) = bundle.manifest.plannerView.resizedSize(width: size[0], height: size[1])
            XCTAssertEqual([w, h], want, "\(size)")
        }
    }

    func testLutGridAndCubeText() throws {
        let lut = try fixture("lut.json")
        let size = lut["grid_size"] as! Int
        XCTAssertEqual(Lut.grid(size), (lut["grid"] as! [[Double]]).flatMap { $0 }.map(Float.init))
        let values = (lut["lut"] as! [[Double]]).flatMap { $0 }.map(Float.init)
        XCTAssertEqual(Lut.cube(values, size: size, title: lut["title"] as! String), lut["cube"] as? String)
    }

    /// VisionEncoderTest.kt runs the same policy through the Kotlin planner; here the loader alone.
    func testVisionEncoderIsLoadedPerPhotoUnlessResident() throws {
        for resident in [false, true] {
            let tally = CountedEncoder.Tally()
            var loader: VisionEncoderLoader? = VisionEncoderLoader(resident: resident) { CountedEncoder(tally) }
            for _ in 0 ..< 3 {
                _ = try loader!.encode([])
                XCTAssertEqual(tally.loads - tally.releases, resident ? 1 : 0, "loaded after encoding, while decoding would run")
            }
            XCTAssertEqual(tally.loads, resident ? 1 : 3)
            loader = nil
            XCTAssertEqual(tally.releases, tally.loads)
        }
    }

    func testBundleHashesAndFields() throws {
        XCTAssertEqual(bundle.manifest.retouchTokenIds, [151649, 151650, 151651])
        XCTAssertEqual(spec.sliderGroups.map { $0.name }, ["Light Adjustment", "Color and Temperature Adjustment", "Specific Color Adjustment"])
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.copyItem(at: bundle.directory, to: copy)
        try Data("x".utf8).write(to: copy.appendingPathComponent("renderer.pte"))
        XCTAssertThrowsError(try VeraBundle(directory: copy))
    }

    /// The Core ML planner's token embedding and decoder are two functions of one package (their tied matrix stored once).
    func testCoreMLPlannerMethodsResolveToTheirPackageAndFunction() {
        let manifest = bundle.manifest
        let languageModel = manifest.artifact("planner", "coreml", method: "token_embedding")?["path"] as? String
        XCTAssertEqual(languageModel, "planner_language_model.mlpackage")
        XCTAssertEqual(manifest.artifact("planner", "coreml", method: "text_decoder")?["path"] as? String, languageModel)
        XCTAssertEqual(manifest.function("planner", "coreml", method: "token_embedding"), "token_embedding")
        XCTAssertEqual(manifest.function("planner", "coreml", method: "text_decoder"), "text_decoder")
        XCTAssertNil(manifest.function("planner", "coreml", method: "vision_encoder"))  // a package of one: its only function
        XCTAssertNil(manifest.artifact("planner", "coreml", method: "text_decoder_with_hidden"))
    }
}

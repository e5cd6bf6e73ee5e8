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

    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        let decodes = trace["decodes"] as! [[String: Any]]
        return decodes.first { $0["ids"] as? [Int] == ids && $0["skip_special_tokens"] as? Bool == skipSpecialTokens }!["text"] as! String
    }
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

    func testPlansMatchPython() throws {
        for case let json as [String: Any] in try fixture("plans.json")["cases"] as! [Any] {
            let plan = parsePlan(json["raw_text"] as! String, spec: spec)
            let want = json["plan"] as! [String: Any]
            for (name, text) in plan.sections { XCTAssertEqual(text, want[name] as? String) }
            XCTAssertEqual(plan.other, want["other"] as? String)
            XCTAssertEqual(plan.retouchTokens, want["retouch_tokens"] as? [String])
        }
    }

    func testLutGridAndCubeText() throws {
        let lut = try fixture("lut.json")
        let size = lut["grid_size"] as! Int
        XCTAssertEqual(Lut.grid(size), (lut["grid"] as! [[Double]]).flatMap { $0 }.map(Float.init))
        let values = (lut["lut"] as! [[Double]]).flatMap { $0 }.map(Float.init)
        XCTAssertEqual(Lut.cube(values, size: size, title: lut["title"] as! String), lut["cube"] as? String)
    }

    func testBundleHashesAndFields() throws {
        XCTAssertEqual(bundle.manifest.retouchTokenIds, [151649, 151650, 151651])
        XCTAssertEqual(spec.sliderGroups.map { $0.name }, ["Light Adjustment", "Color and Temperature Adjustment", "Specific Color Adjustment"])
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.copyItem(at: bundle.directory, to: copy)
        try Data("x".utf8).write(to: copy.appendingPathComponent("renderer.pte"))
        XCTAssertThrowsError(try VeraBundle(directory: copy))
    }
}

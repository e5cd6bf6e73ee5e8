import CoreGraphics
import Foundation
import VeraCore

/// Everything the app runs, wired from the bundle's manifest: Core ML planner, renderer and
/// reference encoder, the tokenizer, Core Image for the LUT. The iOS side of Retoucher
/// (vera_mobile/runtime/retoucher.py). An actor: the decoder's state belongs to one task at a time.
/// `resident` keeps the planner's vision encoder loaded next to its language model instead of loading
/// it for each photo (VeraCore's VisionEncoderLoader).
actor Engine {
    let bundle: VeraBundle
    let planner: CoreMLPlanner
    let tokenizer: HFTokenizer
    let renderer: CoreMLRenderer
    let reference: (CoreMLReferenceEncoder, CoreMLRenderer)?
    var manifest: Manifest { bundle.manifest }

    /// The bundle from the Files app (Documents/bundle) or, failing that, one built into the app.
    static func locate() -> URL? {
        let documents = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0].appendingPathComponent("bundle")
        if FileManager.default.fileExists(atPath: documents.appendingPathComponent("manifest.json").path) { return documents }
        return Bundle.main.url(forResource: "bundle", withExtension: nil)
    }

    init(directory: URL, resident: Bool = false) async throws {
        bundle = try VeraBundle(directory: directory) // every file sha256-checked
        let tokenizerFile = (bundle.manifest.json["tokenizer"] as? [String: Any])?["file"] as? String ?? "tokenizer.json"
        tokenizer = try HFTokenizer(file: bundle.url(tokenizerFile))
        planner = try await CoreMLPlanner(bundle: bundle, resident: resident)
        renderer = try await CoreMLRenderer(bundle: bundle, component: "renderer")
        if let encoder = try await CoreMLReferenceEncoder(bundle: bundle) {
            reference = (encoder, try await CoreMLRenderer(bundle: bundle, component: "reference_renderer"))
        } else {
            reference = nil
        }
    }

    /// Golden vectors: the renderer's, and the planner's generation trace (Core ML's record comes
    /// from the fp32 torch reference, so tokens are compared only where the record demands it).
    func selfCheck() throws -> [String] {
        var problems: [String] = []
        if let golden = manifest.golden("renderer") { problems += try SelfCheck.checkRenderer(renderer, golden: golden) }
        if let golden = manifest.golden("planner", target: "coreml") {
            let features = try planner.encodeImage(SelfCheck.goldenPixels(manifest.imageSize))
            problems += try SelfCheck.checkGeneration(planner, tokenizer: tokenizer, manifest: manifest, golden: golden, features: features)
        }
        return problems
    }

    struct Output {
        var image: CGImage
        var text = ""
        var plan: Plan?
        var forced: [String] = []
        var lut: [Float]?
    }

    func retouch(_ request: Request, photo: CGImage, reference pair: (CGImage, CGImage)?, exact: Bool, maxNewTokens: Int = 1024,
                 onText: @escaping (String) -> Void) throws -> Output {
        var output = Output(image: photo)
        let mask = request.mask()
        let latent: [Float]
        let render: RendererBackend
        if request.mode == "reference" {
            guard let reference, let pair else {
                throw InputError(description: "reference mode needs a bundle with the reference encoder and a before/after pair")
            }
            let (encoder, referenceRenderer) = reference
            let (before, after) = pair
            latent = try encoder.encode(before: Images.referenceView(before, manifest: manifest),
                                        after: Images.referenceView(after, manifest: manifest), mask: mask)
            render = referenceRenderer
        } else {
            let spec = manifest.prompts
            let features = request.usesImageTokens ? try planner.encodeImage(Images.plannerView(photo, manifest: manifest)) : nil
            let ids = try encodeRequest(tokenizer, spec: spec, request: request)
            let embeds = try promptEmbeddings(planner, promptIds: ids, imageIndex: spec.imageTokenIndex, features: features)
            let generation = try generate(planner, tokenizer: tokenizer, promptEmbeds: embeds, eosIds: manifest.eosIds,
                                          retouchIds: manifest.retouchTokenIds, retouchTokens: spec.retouchTokens,
                                          maxNewTokens: maxNewTokens, onText: onText)
            latent = try planner.latent(generation.retouchHidden, mask: mask)
            output.text = tokenizer.decode(generation.tokenIds, skipSpecialTokens: true).trimmingCharacters(in: .whitespacesAndNewlines)
            output.plan = parsePlan(tokenizer.decode(generation.tokenIds, skipSpecialTokens: false), spec: spec)
            output.forced = generation.forcedTokens
            render = renderer
        }
        if exact {
            output.image = try Images.renderExact(photo, renderer: render, latent: latent, mask: mask)
        } else {
            let size = manifest.renderer["lut_size"] as? Int ?? 33
            let lut = try Lut.bake(render, biases: try render.condition(latent: latent, mask: mask), size: size)
            output.lut = lut
            output.image = Images.applyLut(photo, lut: lut, size: size) ?? photo
        }
        return output
    }
}

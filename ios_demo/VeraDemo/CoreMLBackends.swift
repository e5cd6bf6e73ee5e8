import CoreML
import Foundation
import VeraCore

/// Compiles a bundle's .mlpackage once per content hash and loads it (optionally one function of a
/// multifunction package: the renderer holds `condition` and `render_points`).
enum CoreMLLoader {
    static func load(_ package: URL, sha256: String, function: String? = nil) async throws -> MLModel {
        try await MLModel.load(contentsOf: try await compile(package, sha256: sha256), configuration: configuration(function: function))
    }

    /// The compiled model (.mlmodelc) in the app's Caches.
    static func compile(_ package: URL, sha256: String) async throws -> URL {
        let cache = try FileManager.default.url(for: .cachesDirectory, in: .userDomainMask, appropriateFor: nil, create: true)
            .appendingPathComponent("\(sha256).mlmodelc")
        if !FileManager.default.fileExists(atPath: cache.path) {
            let compiled = try await MLModel.compileModel(at: package)
            try FileManager.default.moveItem(at: compiled, to: cache)
        }
        return cache
    }

    static func configuration(function: String? = nil) -> MLModelConfiguration {
        let configuration = MLModelConfiguration()
        configuration.computeUnits = .all
        configuration.functionName = function
        return configuration
    }
}

func multiArray(_ values: [Float], _ shape: [Int]) -> MLMultiArray { MLMultiArray(MLShapedArray(scalars: values, shape: shape)) }

func floats(_ output: MLFeatureProvider, _ name: String) -> [Float] {
    MLShapedArray<Float>(converting: output.featureValue(for: name)!.multiArrayValue!).scalars
}

func predict(_ model: MLModel, _ inputs: [String: MLMultiArray], state: MLState? = nil) throws -> MLFeatureProvider {
    let provider = try MLDictionaryFeatureProvider(dictionary: inputs.mapValues { MLFeatureValue(multiArray: $0) })
    return try state.map { try model.prediction(from: provider, using: $0) } ?? model.prediction(from: provider)
}

/// The planner's Core ML packages (export/planner_coreml.py) behind the core's PlannerBackend: the token
/// embedding and the decoder are two functions of one package, which stores their tied matrix once. The
/// decoder's K/V cache lives in Core ML states (iOS 18); `reset` starts a fresh state. The vision
/// encoder is loaded when VeraCore's VisionEncoderLoader says (`resident`: kept, otherwise once per
/// photo); the language model's packages stay loaded.
final class CoreMLPlanner: PlannerBackend {
    let vision: VisionEncoderLoader
    let embedding, decoder, head: MLModel
    let hiddenSize: Int
    private var state: MLState
    private var position = 0

    init(bundle: VeraBundle, resident: Bool = false) async throws {
        let manifest = bundle.manifest
        func compile(_ method: String) async throws -> URL {
            guard let artifact = manifest.artifact("planner", "coreml", method: method),
                  let path = artifact["path"] as? String, let sha = artifact["sha256"] as? String
            else { throw BundleError(description: "the bundle has no Core ML \(method); export with --targets coreml") }
            return try await CoreMLLoader.compile(bundle.url(path), sha256: sha)
        }
        func load(_ method: String) async throws -> MLModel {
            try await MLModel.load(contentsOf: try await compile(method),
                                   configuration: CoreMLLoader.configuration(function: manifest.function("planner", "coreml", method: method)))
        }
        let visionModel = try await compile("vision_encoder") // now, so that a photo's load never compiles
        let (imageSize, hiddenSize) = (manifest.imageSize, manifest.hiddenSize)
        vision = VisionEncoderLoader(resident: resident) {
            try CoreMLVisionEncoder(compiled: visionModel, imageSize: imageSize, hiddenSize: hiddenSize)
        }
        embedding = try await load("token_embedding")
        decoder = try await load("text_decoder")
        head = try await load("retouch_head")
        self.hiddenSize = hiddenSize
        state = decoder.newState()
    }

    func encodeImage(_ pixels: [Float]) throws -> Rows { try vision.encode(pixels) }

    func embed(_ ids: [Int]) throws -> Rows {
        let input = MLMultiArray(MLShapedArray(scalars: ids.map(Int32.init), shape: [1, ids.count])) // Core ML has no int64
        return Rows(count: ids.count, width: hiddenSize, data: floats(try predict(embedding, ["input_ids": input]), "inputs_embeds"))
    }

    func reset() throws {
        state = decoder.newState()
        position = 0
    }

    func decode(_ embeds: Rows) throws -> (logits: [Float], hidden: [Float]) {
        let positions = MLMultiArray(MLShapedArray(scalars: (position ..< position + embeds.count).map(Int32.init), shape: [embeds.count]))
        let out = try predict(decoder, ["inputs_embeds": multiArray(embeds.data, [1, embeds.count, hiddenSize]), "input_pos": positions],
                              state: state)
        position += embeds.count
        return (floats(out, "logits"), floats(out, "hidden"))
    }

    func latent(_ hidden3: [[Float]], mask: [Float]) throws -> [Float] {
        floats(try predict(head, ["hidden3": multiArray(hidden3.flatMap { $0 }, [1, 3, hiddenSize]), "mask": multiArray(mask, [1, 3])]),
               "latent")
    }
}

/// The planner's vision encoder package, loaded by `init` and released with the instance.
final class CoreMLVisionEncoder: VisionEncoder {
    let model: MLModel
    let imageSize, hiddenSize: Int

    init(compiled: URL, imageSize: Int, hiddenSize: Int) throws {
        model = try MLModel(contentsOf: compiled, configuration: CoreMLLoader.configuration())
        self.imageSize = imageSize
        self.hiddenSize = hiddenSize
    }

    func encode(_ pixels: [Float]) throws -> Rows {
        let out = floats(try predict(model, ["pixels": multiArray(pixels, [1, 3, imageSize, imageSize])]), "image_embeds")
        return Rows(count: out.count / hiddenSize, width: hiddenSize, data: out)
    }
}

/// A renderer package (`renderer_float16.mlpackage`): two functions of one multifunction program.
final class CoreMLRenderer: RendererBackend {
    let conditionModel, renderModel: MLModel
    let tile, biasSize: Int

    init(bundle: VeraBundle, component: String) async throws {
        guard let artifact = bundle.manifest.artifacts.first(where: {
            $0["component"] as? String == component && $0["target"] as? String == "coreml" && $0["precision"] as? String == "float16"
        }), let path = artifact["path"] as? String, let sha = artifact["sha256"] as? String,
              let methods = artifact["methods"] as? [String: [String: Any]],
              let points = (methods["render_points"]?["inputs"] as? [[String: Any]])?.first?["shape"] as? [Int]
        else { throw BundleError(description: "the bundle has no Core ML \(component)") }
        conditionModel = try await CoreMLLoader.load(bundle.url(path), sha256: sha, function: "condition")
        renderModel = try await CoreMLLoader.load(bundle.url(path), sha256: sha, function: "render_points")
        tile = points[0]
        biasSize = bundle.manifest.renderer["bias_size"] as? Int ?? 0
    }

    func condition(latent: [Float], mask: [Float]) throws -> [Float] {
        floats(try predict(conditionModel, ["latent": multiArray(latent, [1, latent.count]), "mask": multiArray(mask, [1, 3])]), "biases")
    }

    func renderPoints(_ points: [Float], biases: [Float]) throws -> [Float] {
        floats(try predict(renderModel, ["points": multiArray(points, [points.count / 3, 3]), "biases": multiArray(biases, [biasSize])]), "colors")
    }
}

/// The reference encoder package (reference mode): an example edit (before, after) to a latent.
final class CoreMLReferenceEncoder {
    let model: MLModel
    let size: Int

    init?(bundle: VeraBundle) async throws {
        guard let artifact = bundle.manifest.artifact("reference", "coreml"), let path = artifact["path"] as? String,
              let sha = artifact["sha256"] as? String else { return nil }
        model = try await CoreMLLoader.load(bundle.url(path), sha256: sha)
        size = ((bundle.manifest.json["preprocessing"] as? [String: Any])?["reference"] as? [String: Any])?["size"] as? Int ?? 512
    }

    func encode(before: [Float], after: [Float], mask: [Float]) throws -> [Float] {
        let shape = [1, 3, size, size]
        return floats(try predict(model, ["ref_before": multiArray(before, shape), "ref_after": multiArray(after, shape),
                                          "mask": multiArray(mask, [1, 3])]), "latent")
    }
}

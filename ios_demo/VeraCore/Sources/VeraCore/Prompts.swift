import Foundation

/// The manifest's prompt section (vera_mobile/prompts.py, copied into the bundle by the exporter).
public struct PromptSpec {
    public let chatTemplate: String
    public let modeTemplates: [String: String]
    public let imageToken: String
    public let imageTokenIndex: Int
    public let retouchTokens: [String]
    public let sectionTokens: [String: [String]]
    public let addedTokens: [String] // every VeraRetouch token: each one closes a plan section
    public let sliderGroups: [SliderGroup] // in slider_group_order: the param prompt's and the mask's order
    public let sliderLimit: Double
    public let maskEpsilon: Double
    let masks: [String: Any]

    init(_ json: [String: Any]) throws {
        guard let chat = json["chat_template"] as? String, let modes = json["modes"] as? [String: String],
              let imageToken = json["image_token"] as? String, let imageIndex = json["image_token_index"] as? Int,
              let retouch = json["retouch_tokens"] as? [String], let rules = json["param_rules"] as? [String: Any],
              let masks = json["masks"] as? [String: Any] else {
            throw BundleError(description: "manifest prompts section is incomplete")
        }
        chatTemplate = chat
        modeTemplates = modes
        self.imageToken = imageToken
        imageTokenIndex = imageIndex
        retouchTokens = retouch
        sectionTokens = json["section_tokens"] as? [String: [String]] ?? [:]
        guard let added = json["added_tokens"] as? [String], let groups = json["slider_groups"] as? [String: [String]],
              let order = json["slider_group_order"] as? [String] else {
            throw BundleError(description: "manifest prompts section lacks added_tokens, slider_groups or slider_group_order")
        }
        addedTokens = added
        // JSONSerialization forgets key order, and the group order is part of the prompt: the manifest states it.
        guard Set(order) == Set(groups.keys), order.count == groups.count else {
            throw BundleError(description: "slider_group_order \(order) does not name each slider group once")
        }
        sliderGroups = order.map { SliderGroup(name: $0, sliders: groups[$0]!) }
        sliderLimit = rules["limit"] as? Double ?? 100
        maskEpsilon = rules["mask_epsilon"] as? Double ?? 0
        self.masks = masks
    }

    public var sliderNames: [String] { sliderGroups.flatMap { $0.sliders } }

    public func fixedMask(_ mode: String) -> [Float] { (masks[mode] as? [Double] ?? [1, 1, 1]).map(Float.init) }
}

/// A request's prompt around the user's own text: `user` is nil when every character is the template's.
public struct PromptParts {
    public let before: String
    public let user: String?
    public let after: String
}

public struct SliderGroup {
    public let name: String
    public let sliders: [String]
}

public struct InputError: Error, CustomStringConvertible {
    public let description: String
}

/// One retouch request, checked like prompts.Request.
public struct Request {
    public let spec: PromptSpec
    public let mode: String
    public let prompt: String?
    public let params: [String: Double]?

    public init(spec: PromptSpec, mode: String, prompt: String? = nil, params: [String: Double]? = nil) throws {
        guard ["auto", "style", "param", "reference"].contains(mode) else { throw InputError(description: "unknown mode '\(mode)'") }
        if mode == "style", (prompt ?? "").trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw InputError(description: "style mode needs a text instruction")
        }
        if mode == "param" {
            guard let params else { throw InputError(description: "param mode needs a slider set") }
            for (name, value) in params {
                guard spec.sliderNames.contains(name) else { throw InputError(description: "unknown slider name \(name)") }
                guard value.isFinite, abs(value) <= spec.sliderLimit else {
                    throw InputError(description: "slider \(name): value \(value) is outside -100 ... 100")
                }
            }
        }
        self.spec = spec
        self.mode = mode
        self.prompt = prompt
        self.params = params
    }

    public var usesImageTokens: Bool { mode == "auto" || mode == "style" }

    /// The full prompt split where the user's style instruction sits, so that it can be tokenized as
    /// plain text (see encodeRequest). Param mode's text is ours: slider names from the manifest, numbers.
    public func promptParts() throws -> PromptParts {
        guard mode == "style" else { return PromptParts(before: try fullPrompt(), user: nil, after: "") }
        let (chatBefore, chatAfter) = try splitOnce(spec.chatTemplate, "{user}")
        let (styleBefore, styleAfter) = try splitOnce(spec.modeTemplates["style"] ?? "", "{prompt}")
        return PromptParts(before: chatBefore + styleBefore, user: prompt ?? "", after: styleAfter + chatAfter)
    }

    private func splitOnce(_ text: String, _ placeholder: String) throws -> (String, String) {
        let parts = text.components(separatedBy: placeholder)
        guard parts.count == 2 else { throw InputError(description: "the manifest's template must contain \(placeholder) exactly once") }
        return (parts[0], parts[1])
    }

    /// The exact chat-formatted string the planner sees (byte-identical to Python's full_prompt()).
    public func fullPrompt() throws -> String {
        let message: String
        switch mode {
        case "auto": message = spec.modeTemplates["auto"] ?? ""
        case "style": message = (spec.modeTemplates["style"] ?? "").replacingOccurrences(of: "{prompt}", with: prompt ?? "")
        case "param": message = (spec.modeTemplates["param"] ?? "").replacingOccurrences(of: "{params}", with: formatParams())
        default: throw InputError(description: "reference mode has no planner prompt")
        }
        return spec.chatTemplate.replacingOccurrences(of: "{user}", with: message)
    }

    public func mask() -> [Float] {
        guard mode == "param" else { return spec.fixedMask(mode) }
        return organized().map { group in group.allSatisfy { abs($0.value) <= spec.maskEpsilon } ? 0 : 1 }
    }

    /// Every slider of every group, value / 100 rounded to 3 places (upstream).
    private func organized() -> [[(name: String, value: Double, repr: String)]] {
        spec.sliderGroups.map { group in
            group.sliders.map { name in
                let (value, repr) = pythonRound3(params?[name] ?? 0)
                return (name: name, value: value, repr: repr)
            }
        }
    }

    /// Python's str() of the grouped dict: single-quoted keys, repr floats.
    private func formatParams() -> String {
        let groups = zip(spec.sliderGroups, organized()).map { group, values in
            "'\(group.name)': {" + values.map { "'\($0.name)': \($0.repr)" }.joined(separator: ", ") + "}"
        }
        return "{" + groups.joined(separator: ", ") + "}"
    }
}

/// round(slider / 100, 3) and its Python repr. printf's "%.3f" rounds the exact binary value half
/// to even and keeps the sign of a zero, as Python does; the repr then drops trailing zeros.
func pythonRound3(_ slider: Double) -> (Double, String) {
    var text = String(format: "%.3f", slider / 100)
    while text.hasSuffix("0") && !text.hasSuffix(".0") { text.removeLast() }
    return (Double(text) ?? 0, text)
}

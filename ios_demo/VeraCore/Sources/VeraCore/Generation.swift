import Foundation

/// Rows of equal width, row-major: image features, token embeddings.
public struct Rows {
    public var count: Int
    public var width: Int
    public var data: [Float]

    public init(count: Int, width: Int, data: [Float]) {
        self.count = count
        self.width = width
        self.data = data
    }

    public func row(_ i: Int) -> [Float] { Array(data[i * width ..< (i + 1) * width]) }
}

/// How one runtime runs the planner's methods (Core ML in the app, a replay in the tests).
public protocol PlannerBackend {
    func encodeImage(_ pixels: [Float]) throws -> Rows // [3, S, S] in [0, 1] -> [N, hidden]
    func embed(_ ids: [Int]) throws -> Rows // [T] -> [T, hidden]
    func reset() throws // start a new sequence (the K/V cache)
    func decode(_ embeds: Rows) throws -> (logits: [Float], hidden: [Float]) // the last position's
    func latent(_ hidden3: [[Float]], mask: [Float]) throws -> [Float]
}

/// The planner's tokenizer (swift-transformers in the app).
public protocol TextTokenizer {
    func encode(_ text: String) -> [Int] // no added special tokens
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
}

/// Ids for a chat prompt, the image index where each image token stood (tokenizer.py: encode_prompt).
public func encodePrompt(_ tokenizer: TextTokenizer, spec: PromptSpec, prompt: String) -> [Int] {
    var ids: [Int] = []
    for (i, chunk) in prompt.components(separatedBy: spec.imageToken).enumerated() {
        if i > 0 { ids.append(spec.imageTokenIndex) }
        ids += tokenizer.encode(chunk)
    }
    return ids
}

/// Embed the prompt, splicing the image features in where the image index stands.
public func promptEmbeddings(_ backend: PlannerBackend, promptIds: [Int], imageIndex: Int, features: Rows?) throws -> Rows {
    var out: Rows?
    var run: [Int] = []
    func append(_ piece: Rows) {
        if out == nil { out = piece } else { out!.data += piece.data; out!.count += piece.count }
    }
    for token in promptIds.map(Optional.some) + [nil] {
        if token == nil || token == imageIndex {
            if !run.isEmpty { append(try backend.embed(run)); run = [] }
            if token == imageIndex {
                guard let features else { throw InputError(description: "the prompt has an image placeholder but no image features") }
                append(features)
            }
        } else {
            run.append(token!)
        }
    }
    return out!
}

/// The first index of the largest value (numpy's argmax). Greedy decoding, the default.
public func argmax(_ values: [Float]) -> Int {
    var best = 0
    for i in values.indices where values[i] > values[best] { best = i }
    return best
}

public struct Generation {
    public var tokenIds: [Int]
    public var retouchHidden: [[Float]] // states before the three retouch tokens, in latent order
    public var forcedTokens: [String]
    public var stopReason: String // "eos" or "max_new_tokens"
    public var promptLength: Int
}

/// The generation loop, line for line vera_mobile/runtime/generation.py (greedy): the state before
/// each retouch token is the one whose logits produced it; missing retouch tokens are appended in
/// latent order at the end and gathered by the same rule.
public func generate(
    _ backend: PlannerBackend, tokenizer: TextTokenizer, promptEmbeds: Rows, eosIds: Set<Int>,
    retouchIds: [Int], retouchTokens: [String], maxNewTokens: Int, onText: ((String) -> Void)? = nil
) throws -> Generation {
    var states: [Int: [Float]] = [:]
    var generated: [Int] = []
    var sent = ""
    func push(_ token: Int) { // stream text, holding back a half-decoded UTF-8 character
        generated.append(token)
        guard let onText else { return }
        let text = tokenizer.decode(generated, skipSpecialTokens: true)
        if text.hasSuffix("\u{FFFD}") { return }
        // Counted in Unicode scalars, like Python's str lengths.
        if text.unicodeScalars.count > sent.unicodeScalars.count {
            onText(String(String.UnicodeScalarView(text.unicodeScalars.dropFirst(sent.unicodeScalars.count))))
        }
        sent = text
    }

    try backend.reset()
    var out = try backend.decode(promptEmbeds)
    var stopReason = "max_new_tokens"
    while generated.count < maxNewTokens {
        let token = argmax(out.logits)
        if eosIds.contains(token) { stopReason = "eos"; break }
        if retouchIds.contains(token), states[token] == nil { states[token] = out.hidden }
        push(token)
        if generated.count < maxNewTokens { out = try backend.decode(try backend.embed([token])) }
    }

    var forced: [String] = []
    let missing = retouchIds.filter { states[$0] == nil }
    if !missing.isEmpty, stopReason == "max_new_tokens", let last = generated.last {
        out = try backend.decode(try backend.embed([last])) // the last sampled token was never fed back
    }
    for (i, token) in missing.enumerated() {
        states[token] = out.hidden
        push(token)
        forced.append(retouchTokens[retouchIds.firstIndex(of: token)!])
        if i + 1 < missing.count { out = try backend.decode(try backend.embed([token])) }
    }
    return Generation(tokenIds: generated, retouchHidden: retouchIds.map { states[$0]! }, forcedTokens: forced,
                      stopReason: stopReason, promptLength: promptEmbeds.count)
}

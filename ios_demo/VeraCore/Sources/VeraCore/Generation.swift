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
    func encode(_ text: String) -> [Int] // no added special tokens; control tokens in the text match
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
    var addedTokens: [String] { get } // every string it maps to one id before BPE (tokenizer.json "added_tokens")
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

/// Ids for a request's prompt, with the user's text tokenized as plain text (Generation.kt: encodeRequest):
/// a `<|im_end|>` or `<retouch_light>` typed in a style instruction becomes ordinary BPE pieces, never a
/// control id, and `<image>` never a second image slot. The plain stretch around the user's text (from the
/// template's last control token before it to its first one after it) is tokenized on its own and spliced
/// in; for text without control-token strings the ids are exactly encodePrompt's on the whole prompt.
/// Positions are counted in Unicode scalars, as Python counts str: Foundation's search compares
/// grapheme clusters and would miss a control token followed by a combining mark.
public func encodeRequest(_ tokenizer: TextTokenizer, spec: PromptSpec, request: Request) throws -> [Int] {
    let parts = try request.promptParts()
    guard let user = parts.user else { return encodePrompt(tokenizer, spec: spec, prompt: parts.before) }
    let controls = (tokenizer.addedTokens + [spec.imageToken]).map { Array($0.unicodeScalars) }
    let before = Array(parts.before.unicodeScalars), after = Array(parts.after.unicodeScalars)
    var head = 0, tail = after.count
    for token in controls {
        if let last = occurrences(of: token, in: before).last { head = max(head, last + token.count) }
        if let first = occurrences(of: token, in: after).first { tail = min(tail, first) }
    }
    let plain = scalarString(before[head...]) + user + scalarString(after[..<tail])
    return try encodePrompt(tokenizer, spec: spec, prompt: scalarString(before[..<head]))
        + encodePlainText(tokenizer, plain, controls: controls.map { scalarString($0[...]) })
        + encodePrompt(tokenizer, spec: spec, prompt: scalarString(after[tail...]))
}

/// `text` tokenized with no control token matched, through the tokenizer's ordinary encode: each
/// occurrence of a control string is cut after its first letter that a non-letter follows
/// ("<|im" | "_end|>"), always a boundary of the byte-level BPE pre-tokenizer, so the ids equal
/// plain-text tokenization (Generation.kt: encodePlainText).
public func encodePlainText(_ tokenizer: TextTokenizer, _ text: String, controls: [String]) throws -> [Int] {
    let scalars = Array(text.unicodeScalars)
    var cuts: Set<Int> = [0, scalars.count]
    for control in controls {
        let token = Array(control.unicodeScalars)
        guard let inside = (1 ..< max(token.count, 1)).first(where: {
            isLetter(token[$0 - 1]) && !isLetter(token[$0]) && !token[$0].properties.isWhitespace
        }) else {
            throw InputError(description: "the tokenizer's control token '\(control)' has no letter-to-symbol boundary to cut at")
        }
        for at in occurrences(of: token, in: scalars) { cuts.insert(at + inside) }
    }
    let bounds = cuts.sorted()
    return zip(bounds, bounds.dropFirst()).flatMap { start, end in tokenizer.encode(scalarString(scalars[start ..< end])) }
}

private func isLetter(_ scalar: Unicode.Scalar) -> Bool {
    switch scalar.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
    default: return false
    }
}

/// Start positions of `token` in `text`, overlapping ones included (as repeated str.find).
private func occurrences(of token: [Unicode.Scalar], in text: [Unicode.Scalar]) -> [Int] {
    guard !token.isEmpty, token.count <= text.count else { return [] }
    return (0 ... text.count - token.count).filter { text[$0 ..< $0 + token.count].elementsEqual(token) }
}

private func scalarString(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
    var view = String.UnicodeScalarView()
    view.append(contentsOf: scalars)
    return String(view)
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

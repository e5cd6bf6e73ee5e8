import Foundation
import Hub
import Tokenizers
import VeraCore

/// The bundle's tokenizer.json through swift-transformers' Tokenizers (no hand-written BPE).
///
/// The bundle ships tokenizer.json only, so the tokenizer_config the library also wants is given
/// here: Qwen2's class (a byte-level BPE) and no clean-up of spaces on decode, which is what the
/// Rust `tokenizers` library used on the host does. The self-check compares the prompt ids with the
/// ones recorded at export, so any tokenizer difference shows up at startup.
struct HFTokenizer: TextTokenizer {
    let tokenizer: Tokenizers.Tokenizer
    let addedTokens: [String] // the core keeps a user's text away from these (VeraCore.encodeRequest)

    init(file: URL) throws {
        let data = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as! [NSString: Any]
        addedTokens = (data["added_tokens"] as? [[String: Any]] ?? []).compactMap { $0["content"] as? String }
        let config: [NSString: Any] = ["tokenizer_class": "Qwen2Tokenizer", "clean_up_tokenization_spaces": false]
        tokenizer = try AutoTokenizer.from(tokenizerConfig: Config(config), tokenizerData: Config(data))
    }

    func encode(_ text: String) -> [Int] { tokenizer.encode(text: text, addSpecialTokens: false) }

    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String { tokenizer.decode(tokens: ids, skipSpecialTokens: skipSpecialTokens) }
}

package dev.vera.demo

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer
import vera.core.Json
import vera.core.Tokenizer
import vera.core.list
import vera.core.obj
import vera.core.str
import java.io.File

/**
 * The bundle's tokenizer.json through Hugging Face's Rust `tokenizers` (DJL's JNI binding, the
 * same library the Python runtime uses), so ids and decoded text match the host exactly.
 */
class HfTokenizer(file: File) : Tokenizer, AutoCloseable {
    private val tokenizer: HuggingFaceTokenizer

    // The core keeps a user's text away from these (vera.core.encodeRequest); DJL does not list them.
    override val addedTokens: List<String> = Json.parse(file.readText(Charsets.UTF_8)).obj("tokenizer.json")
        .list("added_tokens").map { it.obj("added token").str("content") }

    init {
        System.setProperty("offline", "true") // DJL's usage ping: never (the app has no network anyway)
        tokenizer = HuggingFaceTokenizer.builder()
            .optTokenizerPath(file.toPath())
            .optAddSpecialTokens(false) // Qwen2 adds none; the prompt carries its own
            .optTruncation(false)
            .optPadding(false)
            .build()
    }

    override fun encode(text: String): IntArray =
        tokenizer.encode(text, false, false).ids.let { ids -> IntArray(ids.size) { ids[it].toInt() } }

    override fun decode(ids: List<Int>, skipSpecialTokens: Boolean): String =
        tokenizer.decode(LongArray(ids.size) { ids[it].toLong() }, skipSpecialTokens)

    override fun close() = tokenizer.close()
}

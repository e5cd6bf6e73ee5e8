package vera.core

/**
 * A small JSON reader and writer: the manifest, the fixtures and the benchmark results are JSON,
 * and neither Debian's Kotlin 1.3 nor the JVM ships a parser (Android's org.json is not on the JVM).
 *
 * Values map to Kotlin types: object -> LinkedHashMap (key order kept: slider groups are ordered),
 * array -> List, string -> String, number -> Double, true/false -> Boolean, null -> null.
 */
object Json {
    fun parse(text: String): Any? {
        val reader = Reader(text)
        val value = reader.value()
        reader.skipSpace()
        if (!reader.atEnd()) throw reader.error("unexpected text after the JSON value")
        return value
    }

    fun write(value: Any?): String = StringBuilder().also { writeTo(it, value) }.toString()

    private fun writeTo(out: StringBuilder, value: Any?) {
        when (value) {
            null -> out.append("null")
            is Boolean -> out.append(value)
            is Int, is Long -> out.append(value)
            is Number -> {
                val d = value.toDouble()
                require(!d.isNaN() && !d.isInfinite()) { "JSON cannot hold $d" }
                out.append(d)
            }
            is String -> quote(out, value)
            is Map<*, *> -> {
                out.append('{')
                value.entries.forEachIndexed { i, (key, item) ->
                    if (i > 0) out.append(", ")
                    quote(out, key.toString())
                    out.append(": ")
                    writeTo(out, item)
                }
                out.append('}')
            }
            is Iterable<*> -> {
                out.append('[')
                value.forEachIndexed { i, item -> if (i > 0) out.append(", "); writeTo(out, item) }
                out.append(']')
            }
            is FloatArray -> writeTo(out, value.toList())
            is IntArray -> writeTo(out, value.toList())
            else -> throw IllegalArgumentException("cannot write ${value.javaClass.simpleName} as JSON")
        }
    }

    private fun quote(out: StringBuilder, text: String) {
        out.append('"')
        for (c in text) {
            when {
                c == '"' -> out.append("\\\"")
                c == '\\' -> out.append("\\\\")
                c == '\n' -> out.append("\\n")
                c == '\r' -> out.append("\\r")
                c == '\t' -> out.append("\\t")
                c < ' ' -> out.append(String.format("\\u%04x", c.toInt()))
                else -> out.append(c)
            }
        }
        out.append('"')
    }

    private class Reader(val text: String) {
        var pos = 0

        fun atEnd() = pos >= text.length

        fun error(message: String) = IllegalArgumentException("invalid JSON at offset $pos: $message")

        fun skipSpace() {
            while (!atEnd() && text[pos] in " \t\r\n") pos++
        }

        fun value(): Any? {
            skipSpace()
            if (atEnd()) throw error("unexpected end")
            return when (text[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> number()
            }
        }

        private fun literal(word: String, result: Any?): Any? {
            if (!text.startsWith(word, pos)) throw error("expected $word")
            pos += word.length
            return result
        }

        private fun expect(c: Char) {
            skipSpace()
            if (atEnd() || text[pos] != c) throw error("expected '$c'")
            pos++
        }

        /** True (and consumes it) when the next non-space character is [c]. */
        private fun next(c: Char): Boolean {
            skipSpace()
            if (!atEnd() && text[pos] == c) {
                pos++
                return true
            }
            return false
        }

        private fun obj(): Map<String, Any?> {
            expect('{')
            val result = LinkedHashMap<String, Any?>()
            if (next('}')) return result
            do {
                skipSpace()
                val key = string()
                expect(':')
                result[key] = value()
            } while (next(','))
            expect('}')
            return result
        }

        private fun array(): List<Any?> {
            expect('[')
            val result = ArrayList<Any?>()
            if (next(']')) return result
            do {
                result.add(value())
            } while (next(','))
            expect(']')
            return result
        }

        private fun string(): String {
            if (atEnd() || text[pos] != '"') throw error("expected a string")
            pos++
            val out = StringBuilder()
            while (true) {
                if (atEnd()) throw error("unterminated string")
                val c = text[pos++]
                when {
                    c == '"' -> return out.toString()
                    c == '\\' -> out.append(escape())
                    c < ' ' -> throw error("control character in a string")
                    else -> out.append(c)
                }
            }
        }

        private fun escape(): Char {
            if (atEnd()) throw error("unterminated escape")
            return when (val c = text[pos++]) {
                '"', '\\', '/' -> c
                'b' -> '\b'
                'f' -> '\u000c'
                'n' -> '\n'
                'r' -> '\r'
                't' -> '\t'
                'u' -> {
                    if (pos + 4 > text.length) throw error("short \\u escape")
                    val code = text.substring(pos, pos + 4).toIntOrNull(16) ?: throw error("bad \\u escape")
                    pos += 4
                    code.toChar() // surrogate pairs arrive as two escapes and join in the string
                }
                else -> throw error("unknown escape \\$c")
            }
        }

        private fun number(): Double {
            val start = pos
            while (!atEnd() && text[pos] in "+-0123456789.eE") pos++
            return text.substring(start, pos).toDoubleOrNull() ?: throw error("expected a value")
        }
    }
}

// Typed access to parsed JSON, with errors that name the key instead of a ClassCastException.

fun Any?.obj(what: String = "value"): Map<String, Any?> {
    @Suppress("UNCHECKED_CAST")
    return this as? Map<String, Any?> ?: throw IllegalArgumentException("$what must be a JSON object")
}

fun Any?.list(what: String = "value"): List<Any?> =
    this as? List<Any?> ?: throw IllegalArgumentException("$what must be a JSON array")

fun Map<String, Any?>.req(key: String): Any? {
    if (!containsKey(key)) throw IllegalArgumentException("missing key '$key'")
    return get(key)
}

fun Map<String, Any?>.obj(key: String): Map<String, Any?> = req(key).obj("'$key'")

fun Map<String, Any?>.list(key: String): List<Any?> = req(key).list("'$key'")

fun Map<String, Any?>.str(key: String): String =
    req(key) as? String ?: throw IllegalArgumentException("'$key' must be a string")

fun Map<String, Any?>.num(key: String): Double =
    req(key) as? Double ?: throw IllegalArgumentException("'$key' must be a number")

fun Map<String, Any?>.int(key: String): Int = num(key).toInt()

fun List<Any?>.ints(): IntArray = IntArray(size) { (this[it] as Double).toInt() }

fun List<Any?>.floats(): FloatArray = FloatArray(size) { (this[it] as Double).toFloat() }

fun List<Any?>.strings(): List<String> = map { it as String }

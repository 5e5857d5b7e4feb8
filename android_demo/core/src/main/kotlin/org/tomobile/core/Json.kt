// A small strict JSON reader for the export folder's manifest.json, tokenizer.json and contract.json,
// so that :core needs nothing beyond the Kotlin standard library (Android's org.json is not on a
// plain JVM). Objects -> Map<String, Any?> (key order kept), arrays -> List<Any?>, strings ->
// String, true/false -> Boolean, null -> null, numbers -> Long when written as integers that fit,
// else Double (Double.parseDouble rounds correctly, so Python's repr round-trips to the same bits).
package org.tomobile.core

class JsonException(message: String) : IllegalArgumentException(message)

object Json {
    fun parse(text: String): Any? {
        val reader = Reader(text)
        reader.skipSpace()
        val value = reader.value()
        reader.skipSpace()
        if (reader.pos != text.length) reader.fail("trailing characters")
        return value
    }

    private class Reader(val text: String) {
        var pos = 0

        fun fail(what: String): Nothing = throw JsonException("bad JSON at character $pos: $what")

        fun skipSpace() {
            while (pos < text.length && text[pos] in " \t\r\n") pos++
        }

        fun value(): Any? {
            if (pos >= text.length) fail("unexpected end")
            return when (val c = text[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> if (c == '-' || c in '0'..'9') number() else fail("unexpected '$c'")
            }
        }

        fun literal(word: String, result: Any?): Any? {
            if (!text.startsWith(word, pos)) fail("expected $word")
            pos += word.length
            return result
        }

        fun obj(): Map<String, Any?> {
            val out = LinkedHashMap<String, Any?>()
            pos++ // {
            skipSpace()
            if (pos < text.length && text[pos] == '}') return out.also { pos++ }
            while (true) {
                skipSpace()
                if (pos >= text.length || text[pos] != '"') fail("expected a key")
                val key = string()
                skipSpace()
                expect(':')
                skipSpace()
                out[key] = value()
                skipSpace()
                if (pos < text.length && text[pos] == ',') pos++ else return out.also { expect('}') }
            }
        }

        fun array(): List<Any?> {
            val out = ArrayList<Any?>()
            pos++ // [
            skipSpace()
            if (pos < text.length && text[pos] == ']') return out.also { pos++ }
            while (true) {
                skipSpace()
                out.add(value())
                skipSpace()
                if (pos < text.length && text[pos] == ',') pos++ else return out.also { expect(']') }
            }
        }

        fun expect(c: Char) {
            if (pos >= text.length || text[pos] != c) fail("expected '$c'")
            pos++
        }

        fun string(): String {
            val sb = StringBuilder()
            pos++ // opening quote
            while (true) {
                if (pos >= text.length) fail("unterminated string")
                val c = text[pos++]
                when {
                    c == '"' -> return sb.toString()
                    c == '\\' -> sb.append(escape())
                    c < ' ' -> fail("control character in string")
                    else -> sb.append(c)
                }
            }
        }

        fun escape(): Char {
            if (pos >= text.length) fail("unterminated escape")
            return when (val c = text[pos++]) {
                '"', '\\', '/' -> c
                'b' -> '\b'
                'f' -> '\u000c'
                'n' -> '\n'
                'r' -> '\r'
                't' -> '\t'
                'u' -> {
                    if (pos + 4 > text.length) fail("short \\u escape")
                    val code = text.substring(pos, pos + 4).toIntOrNull(16) ?: fail("bad \\u escape")
                    pos += 4
                    code.toChar() // surrogate pairs arrive as two escapes and join in the StringBuilder
                }
                else -> fail("bad escape \\$c")
            }
        }

        fun number(): Any {
            val start = pos
            if (text[pos] == '-') pos++
            while (pos < text.length && text[pos] in "0123456789") pos++
            var integral = true
            if (pos < text.length && text[pos] == '.') {
                integral = false
                pos++
                while (pos < text.length && text[pos] in "0123456789") pos++
            }
            if (pos < text.length && text[pos] in "eE") {
                integral = false
                pos++
                if (pos < text.length && text[pos] in "+-") pos++
                while (pos < text.length && text[pos] in "0123456789") pos++
            }
            val literal = text.substring(start, pos)
            if (literal == "-" || literal.endsWith(".") || literal.last() in "eE+-") fail("bad number $literal")
            if (integral) literal.toLongOrNull()?.let { return it }
            return literal.toDouble()
        }
    }
}

// Typed access with errors that name the key, for files a person may have edited by hand.

@Suppress("UNCHECKED_CAST")
fun Any?.asObject(what: String): Map<String, Any?> =
    this as? Map<String, Any?> ?: throw JsonException("$what: expected a JSON object")

fun Any?.asList(what: String): List<Any?> = this as? List<Any?> ?: throw JsonException("$what: expected a JSON array")

fun Any?.asString(what: String): String = this as? String ?: throw JsonException("$what: expected a string")

fun Any?.asDouble(what: String): Double = (this as? Number)?.toDouble() ?: throw JsonException("$what: expected a number")

fun Any?.asInt(what: String): Int {
    val n = this as? Long ?: throw JsonException("$what: expected an integer")
    if (n < Int.MIN_VALUE || n > Int.MAX_VALUE) throw JsonException("$what: $n does not fit an Int")
    return n.toInt()
}

fun Any?.asBoolean(what: String): Boolean = this as? Boolean ?: throw JsonException("$what: expected true or false")

fun Map<String, Any?>.field(key: String, what: String): Any? =
    if (containsKey(key)) get(key) else throw JsonException("$what: missing \"$key\"")

fun Any?.asIntArray(what: String): IntArray = asList(what).mapIndexed { i, v -> v.asInt("$what[$i]") }.toIntArray()

fun Any?.asLongArray(what: String): LongArray =
    asList(what).mapIndexed { i, v -> (v as? Long) ?: throw JsonException("$what[$i]: expected an integer") }.toLongArray()

fun Any?.asDoubleArray(what: String): DoubleArray = asList(what).mapIndexed { i, v -> v.asDouble("$what[$i]") }.toDoubleArray()

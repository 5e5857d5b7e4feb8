// BERT WordPiece tokenizer read from the export's tokenizer.json: the same ids as Python's tokenizer
// (Hugging Face `tokenizers`: BertNormalizer, BertPreTokenizer, WordPiece, [CLS] ... [SEP]) on every
// contract case. Mirrors ios_demo TomobileCore/Tokenizer.swift; web_demo/core/tokenizer.js wraps
// @huggingface/tokenizers in the same names.
package org.tomobile.core

import java.text.Normalizer

/** Token ids and attention mask, both of the caption length (int64, as the text encoder takes them). */
class Encoding(val inputIds: LongArray, val attentionMask: LongArray)

class WordPieceTokenizer(
    private val vocab: Map<String, Int>,
    private val unkToken: String,
    private val subwordPrefix: String,
    private val maxInputCharsPerWord: Int,
    /** Added tokens matched in the raw text before normalization ([CLS], [MASK], ...), content -> id. */
    private val specialTokens: Map<String, Int>,
    private val lowercase: Boolean,
    private val stripAccents: Boolean,
    private val clsId: Int,
    private val sepId: Int,
    private val padId: Int,
) {
    private val unkId: Int = vocab[unkToken] ?: throw JsonException("tokenizer.json: unk_token $unkToken is not in the vocabulary")

    companion object {
        /** Reads a Hugging Face tokenizer.json with a BERT (uncased or cased) WordPiece pipeline. */
        fun fromTokenizerJson(text: String): WordPieceTokenizer {
            val root = Json.parse(text).asObject("tokenizer.json")
            val model = root.field("model", "tokenizer.json").asObject("tokenizer.json model")
            val modelType = model["type"]
            if (modelType != "WordPiece") throw JsonException("tokenizer.json: model type $modelType is not supported; allowed: WordPiece")
            val vocab = model.field("vocab", "model").asObject("model.vocab").mapValues { (k, v) -> v.asInt("vocab[$k]") }
            val norm = root.field("normalizer", "tokenizer.json").asObject("normalizer")
            if (norm["type"] != "BertNormalizer") throw JsonException("tokenizer.json: normalizer ${norm["type"]} is not supported; allowed: BertNormalizer")
            if (norm["clean_text"] != true || norm["handle_chinese_chars"] != true) {
                throw JsonException("tokenizer.json: BertNormalizer needs clean_text and handle_chinese_chars set to true")
            }
            val pre = root.field("pre_tokenizer", "tokenizer.json").asObject("pre_tokenizer")
            if (pre["type"] != "BertPreTokenizer") throw JsonException("tokenizer.json: pre_tokenizer ${pre["type"]} is not supported; allowed: BertPreTokenizer")
            val lowercase = norm.field("lowercase", "normalizer").asBoolean("normalizer.lowercase")
            val strip = norm["strip_accents"]?.asBoolean("normalizer.strip_accents") ?: lowercase // null: follows lowercase
            val special = LinkedHashMap<String, Int>()
            for ((i, token) in root.field("added_tokens", "tokenizer.json").asList("added_tokens").withIndex()) {
                val t = token.asObject("added_tokens[$i]")
                if (t["normalized"] == true) throw JsonException("tokenizer.json: added token ${t["content"]} is normalized; only raw-text added tokens are supported")
                special[t.field("content", "added_tokens[$i]").asString("content")] = t.field("id", "added_tokens[$i]").asInt("id")
            }
            val post = root["post_processor"].asObject("post_processor").field("special_tokens", "post_processor").asObject("special_tokens")
            fun specialId(name: String) = post.field(name, "post_processor.special_tokens").asObject(name).field("ids", name).asIntArray("$name.ids").single()
            val padId = (root["padding"] as? Map<*, *>)?.get("pad_id")?.asInt("padding.pad_id") ?: 0
            return WordPieceTokenizer(
                vocab, model.field("unk_token", "model").asString("unk_token"),
                model["continuing_subword_prefix"] as? String ?: "##",
                (model["max_input_chars_per_word"] as? Long)?.toInt() ?: 100,
                special, lowercase, strip, specialId("[CLS]"), specialId("[SEP]"), padId,
            )
        }
    }

    /** [CLS] tokens [SEP], truncated to `length` (the caption length) and padded with [PAD]; mask 1 on tokens. */
    fun encode(text: String, length: Int): Encoding {
        require(length >= 2) { "caption length must be at least 2 ([CLS] and [SEP]), got $length" }
        val tokens = tokenize(text)
        val kept = tokens.subList(0, minOf(tokens.size, length - 2))
        val ids = LongArray(length) { padId.toLong() }
        val mask = LongArray(length)
        ids[0] = clsId.toLong()
        kept.forEachIndexed { i, id -> ids[i + 1] = id.toLong() }
        ids[kept.size + 1] = sepId.toLong()
        for (i in 0 until kept.size + 2) mask[i] = 1L
        return Encoding(ids, mask)
    }

    /** Ids without [CLS]/[SEP]: added tokens split off first, then normalize, pre-tokenize, WordPiece. */
    fun tokenize(text: String): List<Int> {
        val out = ArrayList<Int>()
        var start = 0
        while (start <= text.length) {
            val (at, token) = nextSpecial(text, start)
            for (word in preTokenize(normalize(text.substring(start, at)))) wordPiece(word, out)
            if (token == null) break
            out.add(specialTokens.getValue(token))
            start = at + token.length
        }
        return out
    }

    /** The leftmost added token at or after `from` (longest on a tie of position), or (text.length, null). */
    private fun nextSpecial(text: String, from: Int): Pair<Int, String?> {
        var best = text.length
        var bestToken: String? = null
        for (token in specialTokens.keys) {
            val at = text.indexOf(token, from)
            if (at >= 0 && (at < best || (at == best && token.length > (bestToken?.length ?: 0)))) {
                best = at
                bestToken = token
            }
        }
        return Pair(best, bestToken)
    }

    /** BertNormalizer: clean text, space around CJK ideographs, strip accents (NFD, drop Mn), lowercase. */
    fun normalize(text: String): String {
        val sb = StringBuilder()
        text.codePoints().forEach { cp ->
            when {
                cp == 0 || cp == 0xFFFD || isControl(cp) -> {}
                isWhitespace(cp) -> sb.append(' ')
                isChineseChar(cp) -> sb.append(' ').appendCodePoint(cp).append(' ')
                else -> sb.appendCodePoint(cp)
            }
        }
        var s = sb.toString()
        if (stripAccents) {
            val stripped = StringBuilder()
            Normalizer.normalize(s, Normalizer.Form.NFD).codePoints().forEach { cp ->
                if (Character.getType(cp) != Character.NON_SPACING_MARK.toInt()) stripped.appendCodePoint(cp)
            }
            s = stripped.toString()
        }
        if (lowercase) s = lowercaseEach(s)
        return s
    }

    /** BertPreTokenizer: split on white space (dropped) and around each punctuation character (kept). */
    fun preTokenize(text: String): List<String> {
        val words = ArrayList<String>()
        val word = StringBuilder()
        fun flush() {
            if (word.isNotEmpty()) words.add(word.toString())
            word.setLength(0)
        }
        text.codePoints().forEach { cp ->
            when {
                isWhitespace(cp) -> flush()
                isPunctuation(cp) -> {
                    flush()
                    words.add(String(Character.toChars(cp)))
                }
                else -> word.appendCodePoint(cp)
            }
        }
        flush()
        return words
    }

    /** Greedy longest-match-first WordPiece; a word with an unmatched piece, or too long, is one [UNK]. */
    private fun wordPiece(word: String, out: MutableList<Int>) {
        val cps = word.codePoints().toArray()
        if (cps.size > maxInputCharsPerWord) {
            out.add(unkId)
            return
        }
        val pieces = ArrayList<Int>()
        var start = 0
        while (start < cps.size) {
            var end = cps.size
            var found: Int? = null
            while (start < end) {
                val piece = String(cps, start, end - start)
                found = vocab[if (start > 0) subwordPrefix + piece else piece]
                if (found != null) break
                end--
            }
            if (found == null) {
                out.add(unkId)
                return
            }
            pieces.add(found)
            start = end
        }
        out.addAll(pieces)
    }
}

/** Rust's char::is_whitespace (Unicode White_Space), as the tokenizers library uses it. */
internal fun isWhitespace(cp: Int): Boolean =
    cp in 0x09..0x0D || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 || cp in 0x2000..0x200A ||
        cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000

/** "Other" categories (Cc, Cf, Cn, Co, Cs) except tab, newline and carriage return, which count as space. */
internal fun isControl(cp: Int): Boolean {
    if (cp == 0x09 || cp == 0x0A || cp == 0x0D) return false
    return when (Character.getType(cp).toByte()) {
        Character.CONTROL, Character.FORMAT, Character.UNASSIGNED, Character.PRIVATE_USE, Character.SURROGATE -> true
        else -> false
    }
}

/** The CJK Unified Ideographs blocks that BERT surrounds with spaces. */
internal fun isChineseChar(cp: Int): Boolean =
    cp in 0x4E00..0x9FFF || cp in 0x3400..0x4DBF || cp in 0x20000..0x2A6DF || cp in 0x2A700..0x2B73F ||
        cp in 0x2B740..0x2B81F || cp in 0x2B920..0x2CEAF || cp in 0xF900..0xFAFF || cp in 0x2F800..0x2FA1F

/** ASCII punctuation (which includes $ + < = > ^ ` |) or a Unicode punctuation category (P*). */
internal fun isPunctuation(cp: Int): Boolean {
    if (cp in 33..47 || cp in 58..64 || cp in 91..96 || cp in 123..126) return true
    return when (Character.getType(cp).toByte()) {
        Character.CONNECTOR_PUNCTUATION, Character.DASH_PUNCTUATION, Character.START_PUNCTUATION,
        Character.END_PUNCTUATION, Character.INITIAL_QUOTE_PUNCTUATION, Character.FINAL_QUOTE_PUNCTUATION,
        Character.OTHER_PUNCTUATION -> true
        else -> false
    }
}

/** Per-character lowercase, as Rust's char::to_lowercase (no final-sigma context, unlike String.lowercase). */
internal fun lowercaseEach(text: String): String {
    val sb = StringBuilder()
    text.codePoints().forEach { cp ->
        if (cp == 0x130) sb.append("i\u0307") else sb.appendCodePoint(Character.toLowerCase(cp)) // İ: the one 2-char mapping
    }
    return sb.toString()
}

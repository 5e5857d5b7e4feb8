package org.tomobile.core

import java.io.File
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class TokenizerTest {
    private val tokenizer by lazy { WordPieceTokenizer.fromTokenizerJson(File(Fixtures.dir, "tokenizer.json").readText()) }

    @Test
    fun idsAndMaskEqualPythonOnEveryPrompt() {
        val cases = Fixtures.json(File(Fixtures.dir, "tokenizer_cases.json")).field("cases", "tokenizer_cases").asList("cases")
        assertTrue(cases.size >= 60, "only ${cases.size} cases")
        val wrong = cases.map { it.asObject("case") }.filter { case ->
            val enc = tokenizer.encode(case["text"].asString("text"), case["length"].asInt("length"))
            !enc.inputIds.contentEquals(case["input_ids"].asLongArray("input_ids")) ||
                !enc.attentionMask.contentEquals(case["attention_mask"].asLongArray("attention_mask"))
        }
        assertEquals(emptyList<Any?>(), wrong.map { it["text"] }, "prompts whose ids differ from Python's")
    }

    @Test
    fun specialTokensInTheTextAreMatchedBeforeLowercasing() {
        val ids = tokenizer.encode("a[MASK]b [mask]", 16).inputIds
        assertEquals(103L, ids[2]) // [MASK] as one token
        assertTrue(ids.drop(4).take(3).none { it == 103L }, "lower-case [mask] must be split as text")
    }

    @Test
    fun truncatesToTheCaptionLengthWithSepLast() {
        val enc = tokenizer.encode((1..40).joinToString(" ") { "word" }, 16)
        assertEquals(101L, enc.inputIds.first())
        assertEquals(102L, enc.inputIds.last())
        assertArrayEquals(LongArray(16) { 1L }, enc.attentionMask)
    }

    @Test
    fun rejectsWhatItCannotRead() {
        val bpe = """{"model": {"type": "BPE", "vocab": {}}, "normalizer": null, "added_tokens": []}"""
        val error = expectThrows<JsonException> { WordPieceTokenizer.fromTokenizerJson(bpe) }
        assertTrue(error.message!!.contains("allowed: WordPiece"), error.message)
        expectThrows<IllegalArgumentException> { tokenizer.encode("a", 1) }
        expectThrows<JsonException> { WordPieceTokenizer.fromTokenizerJson("{\"model\": ") }
    }
}

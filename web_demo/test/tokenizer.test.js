// Caption ids and masks against the Python tokenizer's, from the export's tokenizer.json.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Tokenizer } from "@huggingface/tokenizers";
import { WordPieceTokenizer } from "../core/tokenizer.js";
import { contract, read } from "./contract.js";

const text = async (relPath) => new TextDecoder().decode(await read(relPath));

test("every contract prompt gives the Python ids and attention mask", async () => {
  const tokenizer = WordPieceTokenizer.fromTokenizerJson(await text("tokenizer.json"), await text("tokenizer_config.json"), Tokenizer);
  const { caption_len: length, cases } = contract.tokenizer;
  assert.ok(cases.length >= 20);
  for (const c of cases) {
    const { inputIds, attentionMask } = tokenizer.encode(c.text, length);
    assert.deepEqual(inputIds, c.input_ids, JSON.stringify(c.text));
    assert.deepEqual(attentionMask, c.attention_mask, JSON.stringify(c.text));
  }
});

// Captions -> (input_ids, attention_mask) at the exported caption length, from the export's
// tokenizer.json (docs/contract.md, "The tokenizer"). The web port runs @huggingface/tokenizers
// (the Rust tokenizers' rules in JavaScript) inside the same names as the Kotlin and Swift ports.
// Its Tokenizer class is passed in: module workers have no import map, so the page's worker imports
// it from vendor/ and node's tests from node_modules.

export class WordPieceTokenizer {
  constructor(tokenizer, padId) {
    this.tokenizer = tokenizer;
    this.padId = padId;
  }

  /** From tokenizer.json's text (and tokenizer_config.json's, when the export has it); Tokenizer: @huggingface/tokenizers'. */
  static fromTokenizerJson(text, configText, Tokenizer) {
    const json = JSON.parse(text);
    const tokenizer = new Tokenizer(json, JSON.parse(configText));
    const padToken = json.padding?.pad_token ?? "[PAD]";
    const padId = json.padding?.pad_id ?? tokenizer.token_to_id(padToken) ?? 0;
    return new WordPieceTokenizer(tokenizer, padId);
  }

  /**
   * [CLS] + the first length - 2 pieces + [SEP], padded to `length` (Hugging Face's truncation and
   * max_length padding). Returns {inputIds, attentionMask}: arrays of `length` numbers.
   */
  encode(text, length) {
    let ids = this.tokenizer.encode(text, { add_special_tokens: true }).ids;
    if (ids.length > length) ids = [...ids.slice(0, length - 1), ids[ids.length - 1]]; // keep the closing [SEP]
    const inputIds = new Array(length).fill(this.padId);
    const attentionMask = new Array(length).fill(0);
    ids.forEach((id, i) => {
      inputIds[i] = id;
      attentionMask[i] = 1;
    });
    return { inputIds, attentionMask };
  }
}

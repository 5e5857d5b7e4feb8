// BERT WordPiece tokenizer read from the export's tokenizer.json: the same ids as Python's tokenizer
// (Hugging Face `tokenizers`: BertNormalizer, BertPreTokenizer, WordPiece, [CLS] ... [SEP]).
// Mirrors android_demo :core Tokenizer.kt. Works on Unicode scalars, and looks pieces up by their
// UTF-8 bytes: Swift's String equality is canonical equivalence ("한" precomposed == its NFD jamo),
// the Rust library's is byte equality.
import Foundation

/// Token ids and attention mask, both of the caption length (int64, as the text encoder takes them).
public struct Encoding {
    public let inputIds: [Int64]
    public let attentionMask: [Int64]
}

public final class WordPieceTokenizer {
    private let vocab: [[UInt8]: Int] // UTF-8 bytes of a piece -> id
    private let unkToken: String
    private let subwordPrefix: String
    private let maxInputCharsPerWord: Int
    /// Added tokens matched in the raw text before normalization ([CLS], [MASK], ...), scalars -> id.
    private let specialTokens: [([Unicode.Scalar], Int)]
    private let lowercase: Bool
    private let stripAccents: Bool
    private let clsId: Int
    private let sepId: Int
    private let padId: Int
    private let unkId: Int

    public init(vocab: [String: Int], unkToken: String, subwordPrefix: String, maxInputCharsPerWord: Int,
                specialTokens: [(String, Int)], lowercase: Bool, stripAccents: Bool, clsId: Int, sepId: Int, padId: Int) throws {
        var bytes: [[UInt8]: Int] = [:]
        for (piece, id) in vocab { bytes[Array(piece.utf8)] = id }
        guard let unk = bytes[Array(unkToken.utf8)] else { throw JsonError("tokenizer.json: unk_token \(unkToken) is not in the vocabulary") }
        self.vocab = bytes
        self.unkToken = unkToken
        self.subwordPrefix = subwordPrefix
        self.maxInputCharsPerWord = maxInputCharsPerWord
        self.specialTokens = specialTokens.map { (Array($0.0.unicodeScalars), $0.1) }
        self.lowercase = lowercase
        self.stripAccents = stripAccents
        self.clsId = clsId
        self.sepId = sepId
        self.padId = padId
        self.unkId = unk
    }

    /// Reads a Hugging Face tokenizer.json with a BERT (uncased or cased) WordPiece pipeline.
    public static func fromTokenizerJson(_ text: String) throws -> WordPieceTokenizer {
        let root = try Json.parse(text).asObject("tokenizer.json")
        let model = try root.field("model", "tokenizer.json").asObject("tokenizer.json model")
        let modelType = try? model["type"]?.asString("type")
        if modelType != "WordPiece" { throw JsonError("tokenizer.json: model type \(modelType ?? "nil") is not supported; allowed: WordPiece") }
        var vocab: [String: Int] = [:]
        for (piece, id) in try model.field("vocab", "model").asObject("model.vocab") { vocab[piece] = try id.asInt("vocab[\(piece)]") }
        let norm = try root.field("normalizer", "tokenizer.json").asObject("normalizer")
        if norm["type"] != JsonValue.string("BertNormalizer") { throw JsonError("tokenizer.json: normalizer is not supported; allowed: BertNormalizer") }
        if norm["clean_text"] != JsonValue.bool(true) || norm["handle_chinese_chars"] != JsonValue.bool(true) {
            throw JsonError("tokenizer.json: BertNormalizer needs clean_text and handle_chinese_chars set to true")
        }
        let pre = try root.field("pre_tokenizer", "tokenizer.json").asObject("pre_tokenizer")
        if pre["type"] != JsonValue.string("BertPreTokenizer") { throw JsonError("tokenizer.json: pre_tokenizer is not supported; allowed: BertPreTokenizer") }
        let lowercase = try norm.field("lowercase", "normalizer").asBoolean("normalizer.lowercase")
        var strip = lowercase // strip_accents null: follows lowercase
        if let value = norm["strip_accents"], value != JsonValue.null { strip = try value.asBoolean("normalizer.strip_accents") }
        var special: [(String, Int)] = []
        for (i, token) in try root.field("added_tokens", "tokenizer.json").asList("added_tokens").enumerated() {
            let t = try token.asObject("added_tokens[\(i)]")
            if t["normalized"] == JsonValue.bool(true) { throw JsonError("tokenizer.json: an added token is normalized; only raw-text added tokens are supported") }
            let content = try t.field("content", "added_tokens[\(i)]").asString("content")
            let id = try t.field("id", "added_tokens[\(i)]").asInt("id")
            special.append((content, id))
        }
        let post = try (root["post_processor"] ?? JsonValue.null).asObject("post_processor").field("special_tokens", "post_processor").asObject("special_tokens")
        func specialId(_ name: String) throws -> Int {
            let ids = try post.field(name, "post_processor.special_tokens").asObject(name).field("ids", name).asIntArray("\(name).ids")
            guard ids.count == 1 else { throw JsonError("tokenizer.json: \(name) must be one id") }
            return ids[0]
        }
        var padId = 0
        if case .object(let padding)? = root["padding"], let pad = padding["pad_id"] { padId = try pad.asInt("padding.pad_id") }
        var prefix = "##"
        if case .string(let p)? = model["continuing_subword_prefix"] { prefix = p }
        var maxChars = 100
        if case .int(let n)? = model["max_input_chars_per_word"] { maxChars = Int(n) }
        return try WordPieceTokenizer(
            vocab: vocab, unkToken: try model.field("unk_token", "model").asString("unk_token"), subwordPrefix: prefix,
            maxInputCharsPerWord: maxChars, specialTokens: special, lowercase: lowercase, stripAccents: strip,
            clsId: try specialId("[CLS]"), sepId: try specialId("[SEP]"), padId: padId)
    }

    /// [CLS] tokens [SEP], truncated to `length` (the caption length) and padded with [PAD]; mask 1 on tokens.
    public func encode(_ text: String, _ length: Int) throws -> Encoding {
        guard length >= 2 else { throw InvalidArgument("caption length must be at least 2 ([CLS] and [SEP]), got \(length)") }
        let tokens = tokenize(text)
        let kept = tokens.prefix(length - 2)
        var ids = [Int64](repeating: Int64(padId), count: length)
        var mask = [Int64](repeating: 0, count: length)
        ids[0] = Int64(clsId)
        for (i, id) in kept.enumerated() { ids[i + 1] = Int64(id) }
        ids[kept.count + 1] = Int64(sepId)
        for i in 0..<(kept.count + 2) { mask[i] = 1 }
        return Encoding(inputIds: ids, attentionMask: mask)
    }

    /// Ids without [CLS]/[SEP]: added tokens split off first, then normalize, pre-tokenize, WordPiece.
    public func tokenize(_ text: String) -> [Int] {
        let scalars = Array(text.unicodeScalars)
        var out: [Int] = []
        var start = 0
        while start <= scalars.count {
            let (at, token) = nextSpecial(scalars, start)
            let piece = String(String.UnicodeScalarView(scalars[start..<at]))
            for word in preTokenize(normalize(piece)) { wordPiece(word, &out) }
            guard let found = token else { break }
            out.append(found.1)
            start = at + found.0.count
        }
        return out
    }

    /// The leftmost added token at or after `from` (longest on a tie of position), or (count, nil).
    private func nextSpecial(_ text: [Unicode.Scalar], _ from: Int) -> (Int, ([Unicode.Scalar], Int)?) {
        var best = text.count
        var bestToken: ([Unicode.Scalar], Int)?
        for token in specialTokens where !token.0.isEmpty {
            var at = from
            while at + token.0.count <= text.count, at < best || (at == best && token.0.count > (bestToken?.0.count ?? 0)) {
                if Array(text[at..<at + token.0.count]) == token.0 {
                    best = at
                    bestToken = token
                    break
                }
                at += 1
            }
        }
        return (best, bestToken)
    }

    /// BertNormalizer: clean text, space around CJK ideographs, strip accents (NFD, drop Mn), lowercase.
    public func normalize(_ text: String) -> String {
        var cleaned = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            let cp = s.value
            if cp == 0 || cp == 0xFFFD || isControl(cp) { continue }
            if isWhitespace(cp) {
                cleaned.append(" ")
            } else if isChineseChar(cp) {
                cleaned.append(" ")
                cleaned.append(s)
                cleaned.append(" ")
            } else {
                cleaned.append(s)
            }
        }
        var s = String(cleaned)
        if stripAccents {
            let kept = s.decomposedStringWithCanonicalMapping.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
            s = String(String.UnicodeScalarView(kept))
        }
        if lowercase { s = lowercaseEach(s) }
        return s
    }

    /// BertPreTokenizer: split on white space (dropped) and around each punctuation character (kept).
    public func preTokenize(_ text: String) -> [[Unicode.Scalar]] {
        var words: [[Unicode.Scalar]] = []
        var word: [Unicode.Scalar] = []
        func flush() {
            if !word.isEmpty { words.append(word) }
            word.removeAll()
        }
        for s in text.unicodeScalars {
            if isWhitespace(s.value) {
                flush()
            } else if isPunctuation(s.value) {
                flush()
                words.append([s])
            } else {
                word.append(s)
            }
        }
        flush()
        return words
    }

    /// Greedy longest-match-first WordPiece; a word with an unmatched piece, or too long, is one [UNK].
    private func wordPiece(_ word: [Unicode.Scalar], _ out: inout [Int]) {
        if word.count > maxInputCharsPerWord {
            out.append(unkId)
            return
        }
        var pieces: [Int] = []
        var start = 0
        while start < word.count {
            var end = word.count
            var found: Int?
            while start < end {
                let piece = String(String.UnicodeScalarView(word[start..<end]))
                found = vocab[Array(((start > 0 ? subwordPrefix : "") + piece).utf8)]
                if found != nil { break }
                end -= 1
            }
            guard let id = found else {
                out.append(unkId)
                return
            }
            pieces.append(id)
            start = end
        }
        out.append(contentsOf: pieces)
    }
}

/// Rust's char::is_whitespace (Unicode White_Space), as the tokenizers library uses it.
func isWhitespace(_ cp: UInt32) -> Bool {
    (0x09...0x0D).contains(cp) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (0x2000...0x200A).contains(cp)
        || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000
}

/// "Other" categories (Cc, Cf, Cn, Co, Cs) except tab, newline and carriage return, which count as space.
func isControl(_ cp: UInt32) -> Bool {
    if cp == 0x09 || cp == 0x0A || cp == 0x0D { return false }
    guard let scalar = Unicode.Scalar(cp) else { return true } // a lone surrogate
    switch scalar.properties.generalCategory {
    case .control, .format, .unassigned, .privateUse, .surrogate: return true
    default: return false
    }
}

/// The CJK Unified Ideographs blocks that BERT surrounds with spaces.
func isChineseChar(_ cp: UInt32) -> Bool {
    (0x4E00...0x9FFF).contains(cp) || (0x3400...0x4DBF).contains(cp) || (0x20000...0x2A6DF).contains(cp)
        || (0x2A700...0x2B73F).contains(cp) || (0x2B740...0x2B81F).contains(cp) || (0x2B920...0x2CEAF).contains(cp)
        || (0xF900...0xFAFF).contains(cp) || (0x2F800...0x2FA1F).contains(cp)
}

/// ASCII punctuation (which includes $ + < = > ^ ` |) or a Unicode punctuation category (P*).
func isPunctuation(_ cp: UInt32) -> Bool {
    if (33...47).contains(cp) || (58...64).contains(cp) || (91...96).contains(cp) || (123...126).contains(cp) { return true }
    guard let scalar = Unicode.Scalar(cp) else { return false }
    switch scalar.properties.generalCategory {
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
         .finalPunctuation, .otherPunctuation: return true
    default: return false
    }
}

/// Per-character lowercase, as Rust's char::to_lowercase (full mapping, no final-sigma context).
func lowercaseEach(_ text: String) -> String {
    var out = ""
    for s in text.unicodeScalars { out += s.properties.lowercaseMapping }
    return out
}

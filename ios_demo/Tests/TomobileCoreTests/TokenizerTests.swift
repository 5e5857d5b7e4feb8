import XCTest
@testable import TomobileCore

final class TokenizerTests: XCTestCase {
    private func tokenizer() throws -> WordPieceTokenizer {
        let text = String(decoding: try Data(contentsOf: try Fixtures.dir().appendingPathComponent("tokenizer.json")), as: UTF8.self)
        return try WordPieceTokenizer.fromTokenizerJson(text)
    }

    func testIdsAndMaskEqualPythonOnEveryPrompt() throws {
        let tok = try tokenizer()
        let cases = try Fixtures.json(try Fixtures.dir().appendingPathComponent("tokenizer_cases.json")).field("cases", "tokenizer_cases").asList("cases")
        XCTAssertGreaterThanOrEqual(cases.count, 60)
        for c in cases {
            let o = try c.asObject("case")
            let text = try o.field("text", "case").asString("text")
            let enc = try tok.encode(text, try o.field("length", "case").asInt("length"))
            XCTAssertEqual(enc.inputIds, try o.field("input_ids", "case").asLongArray("input_ids"), "ids of \(text.debugDescription)")
            XCTAssertEqual(enc.attentionMask, try o.field("attention_mask", "case").asLongArray("attention_mask"), "mask of \(text.debugDescription)")
        }
    }

    func testSpecialTokensInTheTextAreMatchedBeforeLowercasing() throws {
        let ids = try tokenizer().encode("a[MASK]b [mask]", 16).inputIds
        XCTAssertEqual(ids[2], 103) // [MASK] as one token
        XCTAssertFalse(ids.dropFirst(4).prefix(3).contains(103), "lower-case [mask] must be split as text")
    }

    func testTruncatesToTheCaptionLengthWithSepLast() throws {
        let enc = try tokenizer().encode(Array(repeating: "word", count: 40).joined(separator: " "), 16)
        XCTAssertEqual(enc.inputIds.first, 101)
        XCTAssertEqual(enc.inputIds.last, 102)
        XCTAssertEqual(enc.attentionMask, Array(repeating: 1, count: 16))
    }

    func testRejectsWhatItCannotRead() throws {
        let bpe = #"{"model": {"type": "BPE", "vocab": {}}, "normalizer": null, "added_tokens": []}"#
        XCTAssertThrowsError(try WordPieceTokenizer.fromTokenizerJson(bpe)) { XCTAssertTrue("\($0)".contains("allowed: WordPiece")) }
        XCTAssertThrowsError(try tokenizer().encode("a", 1))
        XCTAssertThrowsError(try WordPieceTokenizer.fromTokenizerJson(#"{"model": "#))
    }
}

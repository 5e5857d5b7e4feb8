import XCTest
@testable import TomobileCore

/// SHA256.swift has no Kotlin twin (Kotlin uses MessageDigest): FIPS 180-4 examples and block edges.
final class SHA256Tests: XCTestCase {
    func testKnownDigests() {
        XCTAssertEqual(sha256Hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(sha256Hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(sha256Hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(sha256Hex([UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testChunkedUpdatesEqualOneUpdate() {
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        for split in [0, 1, 55, 56, 63, 64, 65, 999] {
            var h = SHA256()
            h.update(Array(bytes[..<split]))
            h.update(Array(bytes[split...]))
            XCTAssertEqual(h.finalize(), { var one = SHA256(); one.update(bytes); return one.finalize() }(), "split at \(split)")
        }
    }
}

// Where the tests find what the Python reference wrote: TOMOBILE_FIXTURES (android_demo/tools/
// python_fixtures.py OUT_DIR), TOMOBILE_EXPORT (a `tomobile export video-dit-tiny` folder with
// test_vectors/contract.json) and TOMOBILE_WAN_EXPORT (a WanPipeline export with test_vectors/wan_contract.json).
// Mirrors android_demo :core Fixtures.kt; ios_demo/README.md has the commands.
import Foundation
import XCTest
@testable import TomobileCore

struct MissingFixture: Error, CustomStringConvertible {
    let description: String
}

enum Fixtures {
    /// A folder named by an environment variable; unset, the test fails (never a silent skip).
    static func folder(_ variable: String) throws -> URL {
        guard let path = ProcessInfo.processInfo.environment[variable] else {
            throw MissingFixture(description: "\(variable) is not set; see ios_demo/README.md, \"Test\"")
        }
        return URL(fileURLWithPath: path)
    }

    static func dir() throws -> URL { try folder("TOMOBILE_FIXTURES") }

    static func export() throws -> URL { try folder("TOMOBILE_EXPORT") }

    /// A WanPipeline export folder (`tomobile export PIPELINE_DIR ...`) with test_vectors/wan_contract.json.
    static func wanExport() throws -> URL { try folder("TOMOBILE_WAN_EXPORT") }

    static func json(_ file: URL) throws -> [String: JsonValue] {
        try Json.parse(String(decoding: try Data(contentsOf: file), as: UTF8.self)).asObject(file.lastPathComponent)
    }

    static func doubles(_ file: URL, _ offset: Int, _ count: Int) throws -> [Double] {
        let data = try Data(contentsOf: file)
        return (0..<count).map { i in
            var bits: UInt64 = 0
            for b in 0..<8 { bits |= UInt64(data[offset + i * 8 + b]) << (8 * UInt64(b)) }
            return Double(bitPattern: bits)
        }
    }

    /// A contract's header (contract.json and wan_contract.json alike): version 1 and the replay file it describes.
    static func assertContractHeader(_ contract: [String: JsonValue], _ replayBytes: [UInt8]) throws {
        XCTAssertEqual(try contract.field("contract_version", "contract").asInt("contract_version"), 1)
        XCTAssertEqual(replayBytes.count, try contract.field("replay_file_bytes", "contract").asInt("replay_file_bytes"))
        XCTAssertEqual(sha256Hex(replayBytes), try contract.field("replay_file_sha256", "contract").asString("replay_file_sha256"))
    }

    /// `count` float32 little-endian values at byte `offset` of `bytes`.
    static func floats(_ bytes: [UInt8], _ offset: Int, _ count: Int) -> [Float] {
        (0..<count).map { i in
            var bits: UInt32 = 0
            for b in 0..<4 { bits |= UInt32(bytes[offset + i * 4 + b]) << (8 * UInt32(b)) }
            return Float(bitPattern: bits)
        }
    }
}

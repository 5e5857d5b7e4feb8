// The port's proof (docs/contract.md, "Checking a port"): every section of the export's
// test_vectors/contract.json, files read through the manifest with their sha256 checked.
import XCTest
@testable import TomobileCore

final class ContractTests: XCTestCase {
    private var manifest: Manifest!
    private var contract: [String: JsonValue]!
    private var replayBytes: [UInt8]!

    override func setUpWithError() throws {
        manifest = try readManifest(try Fixtures.export())
        contract = try Json.parse(String(decoding: try Data(contentsOf: try manifest.verified("test_vectors/contract.json")), as: UTF8.self))
            .asObject("contract.json")
        let replayFile = try contract.field("replay_file", "contract.json").asString("replay_file")
        replayBytes = [UInt8](try Data(contentsOf: try manifest.verified("test_vectors/" + replayFile)))
    }

    private func section(_ name: String) throws -> [[String: JsonValue]] {
        try contract.field(name, "contract.json").asList(name).enumerated().map { try $0.element.asObject("\(name)[\($0.offset)]") }
    }

    private func leapAt(_ entry: [String: JsonValue]) -> Int? {
        if case .int(let step)? = entry["leap_at"] { return Int(step) }
        return nil
    }

    func testIsVersionOneAndItsReplayFileIsTheOneDescribed() throws { try Fixtures.assertContractHeader(contract, replayBytes) }

    func testGeneratorGivesTheRecordedNormalsAndLatents() throws {
        let noise = try section("noise")
        XCTAssertGreaterThanOrEqual(noise.count, 5)
        for entry in noise {
            let seed = try parseSeed(try entry.field("seed", "noise").asString("seed"))
            let expected = try entry.field("values", "noise").asDoubleArray("values")
            XCTAssertEqual(standardNormals(seed, expected.count).map(\.bitPattern), expected.map(\.bitPattern), "seed \(seed)")
        }
        for entry in try section("latent_noise") {
            let seed = try parseSeed(try entry.field("seed", "latent_noise").asString("seed"))
            let shape = try entry.field("shape", "latent_noise").asIntArray("shape")
            XCTAssertEqual(digestFloat32(latentNoise(shape, seed)), try entry.field("sha256", "latent_noise").asString("sha256"), "latent of seed \(seed)")
        }
    }

    func testTokenizerGivesTheRecordedIdsOnEveryCase() throws {
        let tokenizer = try WordPieceTokenizer.fromTokenizerJson(String(decoding: try Data(contentsOf: try manifest.verified("tokenizer.json")), as: UTF8.self))
        let section = try contract.field("tokenizer", "contract.json").asObject("tokenizer")
        let length = try section.field("caption_len", "tokenizer").asInt("caption_len")
        XCTAssertEqual(length, manifest.captionLen)
        let cases = try section.field("cases", "tokenizer").asList("cases")
        XCTAssertGreaterThanOrEqual(cases.count, 20)
        for c in cases {
            let o = try c.asObject("case")
            let text = try o.field("text", "case").asString("text")
            let enc = try tokenizer.encode(text, length)
            XCTAssertEqual(enc.inputIds, try o.field("input_ids", "case").asLongArray("input_ids"), "ids of \(text.debugDescription)")
            XCTAssertEqual(enc.attentionMask, try o.field("attention_mask", "case").asLongArray("attention_mask"), "mask of \(text.debugDescription)")
        }
    }

    func testTimestepsAreTheRecordedDoubles() throws {
        let cases = try section("timesteps")
        XCTAssertEqual(Set(try cases.map { try $0.field("mode", "timesteps").asString("mode") }), ["discrete", "continuous"])
        for c in cases {
            let actual = try timesteps(try c.field("steps", "timesteps").asInt("steps"), try c.field("shift", "timesteps").asDouble("shift"),
                                       try TimestepMode.parse(try c.field("mode", "timesteps").asString("mode")))
            XCTAssertEqual(actual.map(\.bitPattern), try c.field("values", "timesteps").asDoubleArray("values").map(\.bitPattern))
        }
    }

    func testAutoLeapDecidesAsRecordedOnEverySimilaritySequence() throws {
        let auto = try section("lpl").filter { $0["mode"] == JsonValue.string("auto") }
        XCTAssertTrue(try auto.contains { try $0.field("name", "lpl").asString("name").hasPrefix("synthetic:") })
        for e in auto {
            let name = try e.field("name", "lpl").asString("name")
            let steps = try e.field("steps", name).asInt("steps")
            XCTAssertEqual(defaultMinSteps(steps), try e.field("min_steps", name).asInt("min_steps"), "\(name): min steps")
            let rule = AutoLeap(LeapConfig(mode: .auto, tolerance: try e.field("tolerance", name).asDouble("tolerance"),
                                           patience: try e.field("patience", name).asInt("patience")), steps)
            var decided: Int?
            for (j, sim) in try e.field("similarities", name).asDoubleArray("similarities").enumerated() {
                if rule.observe(j + 1, sim) && j + 1 < steps - 1 {
                    decided = j + 1
                    break
                }
            }
            XCTAssertEqual(decided, leapAt(e), name)
        }
    }

    func testSimilaritiesOfTheRecordedVelocitiesAreTheRecordedDoubles() throws {
        let recorded = try section("lpl").filter { try $0.field("name", "lpl").asString("name").hasPrefix("recorded:") }
        XCTAssertEqual(Set(try recorded.map { try $0.field("similarity", "lpl").asString("similarity") }), ["original", "full"])
        var replays: [String: [String: JsonValue]] = [:]
        for r in try section("replay") { replays[try r.field("name", "replay").asString("name")] = r }
        for e in recorded {
            let replay = replays[try e.field("replay", "lpl").asString("replay")]!
            let shape = try replay.field("shape", "replay").asIntArray("shape")
            let count = shape.reduce(1, *)
            let velocities = try replay.field("calls", "replay").asList("calls").map {
                Fixtures.floats(replayBytes, try $0.asObject("call").field("output_offset", "call").asInt("output_offset"), count)
            }
            let mode = try SimilarityMode.parse(try e.field("similarity", "lpl").asString("similarity"))
            let actual = try zip(velocities, velocities.dropFirst()).map { try velocitySimilarity($0.0, $0.1, shape, mode) }
            XCTAssertEqual(actual.map(\.bitPattern), try e.field("similarities", "lpl").asDoubleArray("similarities").map(\.bitPattern))
        }
    }

    func testFixedLeapsAndTdtmSchedulesAreTheRecordedOnes() throws {
        let shape = [1, 1, 1, 2, 2]
        func run(_ steps: Int, _ tdtm: Int, _ lpl: String, _ spatial: Bool) throws -> SampleResult {
            try sample(VelocityFn { _, x, _ in x.map { _ in 1 } }, [0, 0, 0, 0], shape,
                       try SamplerConfig(steps: steps, leap: try LeapConfig.parse(lpl), tdtmSteps: tdtm, spatial: spatial))
        }
        for e in try section("lpl") where e["mode"] == JsonValue.string("fixed") {
            let result = try run(try e.field("steps", "lpl").asInt("steps"), 0, String(try e.field("step", "lpl").asInt("step")), false)
            XCTAssertEqual(result.leapAt, leapAt(e))
        }
        let tdtm = try section("tdtm")
        XCTAssertGreaterThanOrEqual(tdtm.count, 3)
        for e in tdtm {
            let result = try run(try e.field("steps", "tdtm").asInt("steps"), try e.field("tdtm_steps", "tdtm").asInt("tdtm_steps"),
                                 try e.field("lpl", "tdtm").asString("lpl"), try e.field("spatial", "tdtm").asBoolean("spatial"))
            XCTAssertEqual(result.variants, try e.field("variants", "tdtm").asList("variants").map { try $0.asString("variant") })
            XCTAssertEqual(result.variants.map { $0.contains("_tdtm") }, try e.field("merged", "tdtm").asList("merged").map { try $0.asBoolean("merged") })
            XCTAssertEqual(result.leapAt, leapAt(e))
        }
    }

    func testReplaysReproduceEveryInputDigestAndTheFinalFrames() throws {
        let replays = try section("replay")
        XCTAssertGreaterThanOrEqual(replays.count, 2)
        for replay in replays {
            XCTAssertEqual(try replay.field("shape", "replay").asIntArray("shape"), manifest.shape)
            try assertReplay(replay, replayBytes)
        }
    }
}

import XCTest
@testable import TomobileCore

final class SamplerTests: XCTestCase {
    private func fixture() throws -> [String: JsonValue] {
        try Fixtures.json(try Fixtures.dir().appendingPathComponent("sampler_cases.json"))
    }

    func testTimestepsEqualPythonForEveryCountShiftAndMode() throws {
        let cases = try fixture().field("timesteps", "sampler_cases").asList("timesteps")
        XCTAssertGreaterThanOrEqual(cases.count, 300)
        for c in cases {
            let o = try c.asObject("timesteps case")
            let actual = try timesteps(try o.field("steps", "case").asInt("steps"), try o.field("shift", "case").asDouble("shift"),
                                       try TimestepMode.parse(try o.field("mode", "case").asString("mode")))
            XCTAssertEqual(try o.field("values", "case").asDoubleArray("values").map(\.bitPattern), actual.map(\.bitPattern))
        }
    }

    func testAutoLeapMinimumStepEqualsPython() throws {
        for (steps, expected) in try fixture().field("min_steps", "sampler_cases").asObject("min_steps") {
            XCTAssertEqual(defaultMinSteps(Int(steps)!), try expected.asInt(steps), "steps \(steps)")
        }
        XCTAssertEqual(defaultMinSteps(30), 14) // On-device Sora's step 14 of 30
    }

    func testSyntheticReplaysReproduceEveryInputAndTheFinalLatent() throws {
        let velocities = [UInt8](try Data(contentsOf: try Fixtures.dir().appendingPathComponent("sampler_velocities.bin")))
        let cases = try fixture().field("replay", "sampler_cases").asList("replay")
        XCTAssertGreaterThanOrEqual(cases.count, 6)
        for c in cases { try assertReplay(try c.asObject("replay case"), velocities) }
    }

    func testVariantNamesFollowTheExport() {
        XCTAssertEqual(variantName(false, false), "denoiser")
        XCTAssertEqual(variantName(true, false), "denoiser_tdtm")
        XCTAssertEqual(variantName(false, true), "denoiser_tome")
        XCTAssertEqual(variantName(true, true), "denoiser_tdtm_tome")
    }

    func testLeapSettingsParseLikeTheCli() throws {
        XCTAssertEqual(try LeapConfig.parse("off").mode, .off)
        XCTAssertEqual(try LeapConfig.parse(" Auto ").mode, .auto)
        XCTAssertEqual(try LeapConfig.parse("15"), LeapConfig(mode: .fixed, step: 15))
        for bad in ["0", "-3", "1.5", "", "sometimes"] {
            XCTAssertThrowsError(try LeapConfig.parse(bad)) { XCTAssertTrue("\($0)".contains("allowed: off, auto")) }
        }
        XCTAssertThrowsError(try SamplerConfig(steps: 10, leap: try LeapConfig.parse("10")))
        XCTAssertThrowsError(try SamplerConfig(steps: 10, leap: try LeapConfig.parse("9"))) { XCTAssertTrue("\($0)".contains("1 <= N <= 8")) } // as Python refuses
        XCTAssertEqual(try SamplerConfig(steps: 10, leap: try LeapConfig.parse("8")).leap.step, 8)
        XCTAssertThrowsError(try SamplerConfig(steps: 10, tdtmSteps: 11))
        XCTAssertThrowsError(try SamplerConfig(guidance: .nan))
        XCTAssertThrowsError(try SamplerConfig(steps: 1001))
        XCTAssertThrowsError(try TimestepMode.parse("linear"))
    }

    func testFramesAreChannelsLastAndClipped() throws {
        let frames = try framesFromLatent([-3, 0, 1, 0.5, -1, 7], [1, 3, 1, 1, 2]) // channel-major, two pixels
        XCTAssertEqual(frames, [0, 1, 0, 0.5, 0.75, 1])
    }

    func testDigestIsSha256OfLittleEndianFloat32() {
        // hashlib.sha256(struct.pack('<3f', 1.0, -2.5, 0.1)).hexdigest()
        XCTAssertEqual(digestFloat32([1, -2.5, 0.1]), "2f9cc761bc2594fa578868daeedc59b0fc115513fae3e5dc09c4e86e50b8aaf6")
    }
}

/// Runs the Swift sampler on a recorded replay (the contract's or a synthetic one) and checks every digest.
func assertReplay(_ replay: [String: JsonValue], _ velocities: [UInt8]) throws {
    let name = try replay.field("name", "replay").asString("name")
    let shape = try replay.field("shape", name).asIntArray("shape")
    let s = try replay.field("settings", name).asObject("settings")
    let similarity = try SimilarityMode.parse(try s.field("lpl_similarity", name).asString("lpl_similarity"))
    let cfg = try SamplerConfig(
        steps: try s.field("steps", name).asInt("steps"), guidance: Float(try s.field("guidance", name).asDouble("guidance")),
        shift: try s.field("shift", name).asDouble("shift"), leap: try LeapConfig.parse(try s.field("lpl", name).asString("lpl"), similarity),
        tdtmSteps: try s.field("tdtm_steps", name).asInt("tdtm_steps"), timesteps: try TimestepMode.parse(try s.field("timesteps", name).asString("timesteps")),
        spatial: try s.field("spatial", name).asBoolean("spatial"))
    let noise = latentNoise(shape, try parseSeed(try replay.field("seed", name).asString("seed")))
    XCTAssertEqual(digestFloat32(noise), try replay.field("noise_sha256", name).asString("noise_sha256"), "\(name): noise")
    let calls = try replay.field("calls", name).asList("calls").map { try $0.asObject("call") }
    var n = 0
    let result = try sample(VelocityFn { variant, x, t in
        guard n < calls.count else { throw MissingFixture(description: "\(name): the sampler made more than \(calls.count) calls") }
        let call = calls[n]
        XCTAssertEqual(variant, try call.field("variant", name).asString("variant"), "\(name) call \(n): variant")
        XCTAssertEqual(t, Float(try call.field("t_float32", name).asDouble("t_float32")), "\(name) call \(n): t")
        XCTAssertEqual(digestFloat32(x), try call.field("input_sha256", name).asString("input_sha256"), "\(name) call \(n): input latent")
        let v = Fixtures.floats(velocities, try call.field("output_offset", name).asInt("output_offset"), x.count)
        XCTAssertEqual(digestFloat32(v), try call.field("output_sha256", name).asString("output_sha256"), "\(name) call \(n): recorded velocity")
        n += 1
        return v
    }, noise, shape, cfg)
    XCTAssertEqual(result.calls, calls.count, "\(name): calls")
    var leapAt: Int?
    if case .int(let step)? = replay["leap_at"] { leapAt = Int(step) }
    XCTAssertEqual(result.leapAt, leapAt, "\(name): leap step")
    XCTAssertEqual(result.mergedCalls, try replay.field("merged_calls", name).asInt("merged_calls"), "\(name): merged calls")
    XCTAssertEqual(result.similarities.map(\.bitPattern), try replay.field("similarities", name).asDoubleArray("similarities").map(\.bitPattern), "\(name): LPL similarities")
    XCTAssertEqual(digestFloat32(result.x), try replay.field("final_latent_sha256", name).asString("final_latent_sha256"), "\(name): final latent")
    if shape[0] == 1 && shape[1] == 3 {
        XCTAssertEqual(digestFloat32(try framesFromLatent(result.x, shape)), try replay.field("frames_sha256", name).asString("frames_sha256"), "\(name): frames")
    }
}

// The Wan sampler's proof (docs/contract.md, "The Wan pipeline"): every section of a WanPipeline export's
// test_vectors/wan_contract.json but the tokenizer (UMT5's is not ported to Swift), files read through the
// manifest's sha256 (TOMOBILE_WAN_EXPORT). Mirrors android_demo WanContractTest.kt test by test.
import XCTest
@testable import TomobileCore

final class WanContractTests: XCTestCase {
    private var contract: [String: JsonValue]!
    private var replayBytes: [UInt8]!
    private var configs: [String: JsonValue]!

    override func setUpWithError() throws {
        let folder = try Fixtures.wanExport()
        let files = try Fixtures.json(folder.appendingPathComponent("manifest.json")).field("files", "manifest.json").asObject("files")
        func verified(_ relPath: String) throws -> URL {
            try verifyFile(folder, relPath, try files.field(relPath, "files").asString(relPath))
        }
        contract = try Fixtures.json(try verified("test_vectors/wan_contract.json"))
        let replayFile = try contract.field("replay_file", "wan_contract.json").asString("replay_file")
        replayBytes = [UInt8](try Data(contentsOf: try verified("test_vectors/" + replayFile)))
        configs = try contract.field("scheduler_configs", "wan_contract.json").asObject("scheduler_configs")
    }

    private func section(_ name: String) throws -> [[String: JsonValue]] {
        try contract.field(name, "wan_contract.json").asList(name).enumerated().map { try $0.element.asObject("\(name)[\($0.offset)]") }
    }

    private func config(_ name: JsonValue?) throws -> [String: JsonValue] {
        let key = try (name ?? .null).asString("scheduler")
        return try configs.field(key, "scheduler_configs").asObject(key)
    }

    func testIsVersionOneAndItsReplayFileIsTheOneDescribed() throws { try Fixtures.assertContractHeader(contract, replayBytes) }

    func testEveryScheduleIsTheRecordedBits() throws {
        let entries = try section("schedules")
        XCTAssertGreaterThanOrEqual(entries.count, 40)
        for e in entries {
            let steps = try e.field("steps", "schedule").asInt("steps")
            let s = try flowSchedule(try config(e["name"]), steps)
            let whereText = "\(String(describing: e["name"])), \(steps) steps"
            XCTAssertEqual(s.kind, try e.field("kind", "schedule").asString("kind"), whereText)
            XCTAssertEqual(s.sigmas.map { Double($0).bitPattern }, try e.field("sigmas", "schedule").asDoubleArray("sigmas").map(\.bitPattern), whereText)
            XCTAssertEqual(s.timesteps.map(\.bitPattern), try e.field("timesteps", "schedule").asDoubleArray("timesteps").map(\.bitPattern), whereText)
            XCTAssertEqual(s.order, try e.field("order", "schedule").asInt("order"), whereText)
        }
    }

    func testOtherSchedulersAndOptionsAreRefused() throws {
        XCTAssertThrowsError(try flowSchedule(["_class_name": .string("DDIMScheduler")], 4))
        var karras = try config(.string("euler_shift3"))
        karras["use_karras_sigmas"] = .bool(true)
        XCTAssertThrowsError(try flowSchedule(karras, 4))
        var epsilon = try config(.string("unipc_shift3_order2"))
        epsilon["prediction_type"] = .string("epsilon")
        XCTAssertThrowsError(try flowSchedule(epsilon, 4))
        XCTAssertThrowsError(try FlowConfig(try flowSchedule(try config(.string("euler_shift3")), 4), leap: try LeapConfig.parse("3")))
    }

    func testPromptCleaningGivesTheRecordedText() throws {
        let cases = try section("prompt_clean")
        XCTAssertGreaterThanOrEqual(cases.count, 10)
        for c in cases {
            let text = try c.field("text", "case").asString("text")
            XCTAssertEqual(promptClean(text), try c.field("clean", "case").asString("clean"), text.debugDescription)
        }
    }

    func testUnscalingGivesTheRecordedLatent() throws {
        let s = try contract.field("scaling", "contract").asObject("scaling")
        let shape = try s.field("shape", "scaling").asIntArray("shape")
        let x = latentNoise(shape, try parseSeed(try s.field("seed", "scaling").asString("seed")))
        XCTAssertEqual(digestFloat32(x), try s.field("input_sha256", "scaling").asString("input_sha256"))
        let out = unscaleLatents(x, shape, try s.field("latents_mean", "scaling").asDoubleArray("mean"),
                                 try s.field("latents_std", "scaling").asDoubleArray("std"))
        XCTAssertEqual(digestFloat32(out), try s.field("output_sha256", "scaling").asString("output_sha256"))
    }

    func testReplaysReproduceEveryInputDigestAndTheFinalLatent() throws {
        let replays = try section("replay")
        XCTAssertEqual(Set(try replays.map { try config($0["scheduler"]).field("_class_name", "config").asString("class") }),
                       [eulerScheduler, unipcScheduler])
        for replay in replays { try assertWanReplay(replay) }
    }

    private func assertWanReplay(_ replay: [String: JsonValue]) throws {
        let name = try replay.field("name", "replay").asString("name")
        let shape = try replay.field("shape", name).asIntArray("shape")
        let noise = latentNoise(shape, try parseSeed(try replay.field("seed", name).asString("seed")))
        XCTAssertEqual(digestFloat32(noise), try replay.field("noise_sha256", name).asString("noise_sha256"), "\(name): noise")
        let schedule = try flowSchedule(try config(replay["scheduler"]), try replay.field("steps", name).asInt("steps"))
        let cfg = try FlowConfig(schedule, guidance: try replay.field("guidance", name).asDouble("guidance"),
                                 leap: try LeapConfig.parse(try replay.field("lpl", name).asString("lpl")),
                                 tdtmSteps: try replay.field("tdtm_steps", name).asInt("tdtm_steps"))
        let calls = try replay.field("calls", name).asList("calls").map { try $0.asObject("call") }
        var n = 0
        let bytes = replayBytes!
        let result = try sampleFlow(TransformerFn { x, t, prompt, part, step in
            guard n < calls.count else { throw MissingFixture(description: "\(name): more than \(calls.count) calls") }
            let call = calls[n]
            let whereText = "\(name) call \(n)"
            XCTAssertEqual(step, try call.field("step", "call").asInt("step"), whereText)
            XCTAssertEqual(t, Float(try call.field("timestep", "call").asDouble("timestep")), whereText)
            XCTAssertEqual(prompt, try call.field("branch", "call").asString("branch"), whereText)
            XCTAssertEqual(part, try call.field("part", "call").asString("part"), whereText)
            XCTAssertEqual(digestFloat32(x), try call.field("input_sha256", "call").asString("input_sha256"), "\(whereText): input latent")
            n += 1
            return Fixtures.floats(bytes, try call.field("output_offset", "call").asInt("output_offset"), x.count)
        }, noise, shape, cfg)
        XCTAssertEqual(result.calls, calls.count, "\(name): calls")
        var leapAt: Int?
        if case .int(let step)? = replay["leap_at"] { leapAt = Int(step) }
        XCTAssertEqual(result.leapAt, leapAt, "\(name): leap step")
        XCTAssertEqual(result.mergedSteps, try replay.field("merged_steps", name).asInt("merged_steps"), "\(name): TDTM steps")
        XCTAssertEqual(result.similarities.map(\.bitPattern), try replay.field("similarities", name).asDoubleArray("similarities").map(\.bitPattern),
                       "\(name): LPL similarities")
        XCTAssertEqual(digestFloat32(result.x), try replay.field("final_latent_sha256", name).asString("final"), "\(name): final latent")
    }
}

import XCTest
@testable import TomobileCore

final class PipelineTests: XCTestCase {
    private let shape = [1, 3, 2, 4, 4]

    private func tokenizer() throws -> WordPieceTokenizer {
        try WordPieceTokenizer.fromTokenizerJson(String(decoding: try Data(contentsOf: try Fixtures.dir().appendingPathComponent("tokenizer.json")), as: UTF8.self))
    }

    /// Records what the pipeline hands the parts; the velocity is a fixed float32 function of x and t.
    private final class FakeParts: TextEncoder, Denoiser {
        let variants: Set<String>
        var ids: [Int64]?
        var masks: [[Float]] = []
        var guidances: [Float] = []

        init(_ variants: Set<String>) { self.variants = variants }

        func encode(_ inputIds: [Int64], _ attentionMask: [Int64]) throws -> [Float] {
            ids = inputIds
            return (0..<(inputIds.count * 3)).map { Float($0) }
        }

        func run(_ variant: String, _ x: [Float], _ t: Float, _ states: [Float], _ mask: [Float], _ guidance: Float) throws -> [Float] {
            masks.append(mask)
            guidances.append(guidance)
            return x.map { $0 * 0.5 + t }
        }
    }

    func testGenerateTokenizesEncodesAndSamplesFromTheSeedsNoise() throws {
        let tok = try tokenizer()
        let parts = FakeParts(["denoiser", "denoiser_tdtm"])
        let cfg = try SamplerConfig(steps: 6, guidance: 7.5, leap: try LeapConfig.parse("3"), tdtmSteps: 2)
        let gen = try Pipeline(tok, parts, parts, shape, 16).generate("a red circle", 42, cfg)
        let enc = try tok.encode("a red circle", 16)
        XCTAssertEqual(parts.ids, enc.inputIds)
        XCTAssertEqual(parts.masks.first, enc.attentionMask.map { Float($0) })
        XCTAssertEqual(parts.guidances, [7.5, 7.5, 7.5, 7.5])
        let expected = try sample(VelocityFn { _, x, t in x.map { $0 * 0.5 + t } }, latentNoise(shape, 42), shape, cfg)
        XCTAssertEqual(digestFloat32(gen.frames), digestFloat32(try framesFromLatent(expected.x, shape)))
        XCTAssertEqual(gen.stats.variants, ["denoiser_tdtm", "denoiser_tdtm", "denoiser", "denoiser"])
        XCTAssertEqual(gen.stats.leapAt, 3)
        XCTAssertEqual(gen.stats.callMillis.count, 4)
    }

    func testAVariantTheExportLacksIsNamedWithThoseItHas() throws {
        let parts = FakeParts(["denoiser"])
        XCTAssertThrowsError(try Pipeline(try tokenizer(), parts, parts, shape, 16).generate("x", 0, try SamplerConfig(steps: 2, spatial: true))) {
            XCTAssertEqual("\($0)", "variant denoiser_tome is not in the export; it has: denoiser")
        }
    }

    func testScreenSettingsBecomeTheSamplerConfig() throws {
        let defaults = try SamplerConfig(guidance: 4.0, shift: 2.0, leap: LeapConfig(similarity: .full))
        var typed = ScreenSettings()
        typed.steps = " 20 "
        typed.lpl = "auto"
        typed.tdtmSteps = "5"
        typed.spatial = true
        XCTAssertEqual(try typed.toConfig(defaults), try SamplerConfig(steps: 20, leap: LeapConfig(mode: .auto, similarity: .full), tdtmSteps: 5, spatial: true))
        typed.steps = "many"
        XCTAssertThrowsError(try typed.toConfig(defaults)) { XCTAssertEqual("\($0)", "steps must be a whole number, got \"many\"") }
        typed.steps = "30"
        typed.lpl = "30"
        XCTAssertThrowsError(try typed.toConfig(defaults)) // leap must be below steps
        typed.seed = "-1"
        XCTAssertThrowsError(try typed.seedValue())
    }

    func testFramePixelsRoundLikeTheGifWriter() {
        // Python's save_clip: (f * 255 + 0.5).astype(uint8) on float32 frames.
        XCTAssertEqual(frameArgb([0, 0.5, 1, 0.2, 0.998, 0.001], [1, 3, 1, 1, 2], 0), [0xFF00_80FF, 0xFF33_FE00])
    }
}

import XCTest
@testable import TomobileCore

final class NoiseTests: XCTestCase {
    func testSplitMix64MatchesTheReferenceSequence() {
        // SplitMix64's published first outputs for seed 0 (Vigna's splitmix64.c).
        let (s1, first) = splitMix64(0)
        let (_, second) = splitMix64(s1)
        XCTAssertEqual(first, 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(second, 0x6E78_9E6A_A1B9_65F4)
    }

    func testNormalsEqualPythonBitForBitOverManySeeds() throws {
        let dir = try Fixtures.dir()
        let meta = try Fixtures.json(dir.appendingPathComponent("noise.json"))
        let count = try meta.field("count", "noise.json").asInt("count")
        let seeds = try meta.field("seeds", "noise.json").asList("seeds").map { try parseSeed(try $0.asString("seed")) }
        for (k, seed) in seeds.enumerated() {
            let expected = try Fixtures.doubles(dir.appendingPathComponent("noise.bin"), k * count * 8, count)
            let actual = standardNormals(seed, count)
            for i in 0..<count where expected[i].bitPattern != actual[i].bitPattern {
                XCTFail("seed \(seed), normal \(i): Swift \(actual[i]) != Python \(expected[i])")
                return
            }
        }
        XCTAssertGreaterThanOrEqual(seeds.count * count, 200_000)
    }

    func testLatentNoiseDigestsEqualPython() throws {
        let latents = try Fixtures.json(try Fixtures.dir().appendingPathComponent("noise.json")).field("latents", "noise.json").asList("latents")
        XCTAssertFalse(latents.isEmpty)
        for entry in latents {
            let e = try entry.asObject("latent")
            let seed = try parseSeed(try e.field("seed", "latent").asString("seed"))
            let shape = try e.field("shape", "latent").asIntArray("shape")
            XCTAssertEqual(try e.field("sha256", "latent").asString("sha256"), digestFloat32(latentNoise(shape, seed)), "seed \(seed) shape \(shape)")
        }
    }

    func testPortableLogIsWithinAFewUlpOfMathLog() {
        let rng = PortableRandom(5)
        for _ in 0..<100_000 {
            let s = rng.nextUniform()
            if s == 0 { continue }
            XCTAssertLessThanOrEqual(abs(portableLog(s) - log(s)), 4 * log(s).ulp.magnitude, "ln(\(s))")
        }
    }

    func testSeedsAreUnsigned64BitDecimals() throws {
        XCTAssertEqual(try parseSeed("18446744073709551615"), UInt64.max)
        XCTAssertEqual(try parseSeed(" 9223372036854775813 "), 9_223_372_036_854_775_813)
        for bad in ["-1", "18446744073709551616", "1e3", "", "0x10"] {
            XCTAssertThrowsError(try parseSeed(bad)) { XCTAssertTrue("\($0)".contains("0..2^64-1")) }
        }
    }
}

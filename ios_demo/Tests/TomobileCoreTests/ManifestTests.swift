import XCTest
@testable import TomobileCore

final class ManifestTests: XCTestCase {
    func testReadsTheRealExportAndVerifiesEveryListedFile() throws {
        let m = try readManifest(try Fixtures.export())
        XCTAssertEqual(m.model, "video-dit-tiny")
        XCTAssertEqual(m.shape, [1, 3, 8, 32, 32])
        XCTAssertEqual(m.captionLen, 16)
        XCTAssertEqual(m.captionDim, 384)
        XCTAssertEqual(m.denoiserInputs, ["x", "t", "states", "mask", "guidance"])
        XCTAssertEqual(m.defaults, try SamplerConfig(steps: 30, guidance: 4.0, shift: 2.0, leap: try LeapConfig.parse("15"), tdtmSteps: 15))
        XCTAssertEqual(Set(try m.partsFor("onnx").keys), ["text_encoder", "denoiser", "denoiser_tdtm", "denoiser_tome", "denoiser_tdtm_tome"])
        XCTAssertNotNil(m.files["tokenizer.json"])
        for path in m.files.keys { XCTAssertEqual(try sha256Path(try m.verified(path)), m.files[path], path) }
        XCTAssertThrowsError(try m.partsFor("tflite")) { XCTAssertTrue("\($0)".contains("--format tflite")) }
    }

    func testRefusesMissingAlteredAndUnlistedFilesByName() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tomobile-manifest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("{}".utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
        try Data([1, 2, 3]).write(to: dir.appendingPathComponent("denoiser.pte"))
        try Data(fakeManifest(sha256Hex([1, 2, 3])).utf8).write(to: dir.appendingPathComponent("manifest.json"))
        let m = try readManifest(dir)
        XCTAssertEqual(try m.verified("denoiser.pte").lastPathComponent, "denoiser.pte")

        try Data([1, 2, 4]).write(to: dir.appendingPathComponent("denoiser.pte"))
        XCTAssertThrowsError(try m.verified("denoiser.pte")) { XCTAssertTrue("\($0)".hasPrefix("denoiser.pte was altered")) }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("denoiser.pte"))
        XCTAssertThrowsError(try m.verified("denoiser.pte")) { XCTAssertTrue("\($0)".hasPrefix("denoiser.pte is missing")) }
        XCTAssertThrowsError(try m.verified("extra.bin")) { XCTAssertTrue("\($0)".hasPrefix("extra.bin is not listed")) }
    }

    func testFoldersHashAsTheExporterHashesAnMlpackage() throws {
        let dir = try Fixtures.dir()
        let expected = try Fixtures.json(dir.appendingPathComponent("folder_digest.json"))
        let folder = dir.appendingPathComponent(try expected.field("folder", "folder_digest").asString("folder"))
        XCTAssertEqual(try sha256Path(folder), try expected.field("sha256", "folder_digest").asString("sha256"))
        XCTAssertEqual(try sha256Path(folder.appendingPathComponent("a/b")), try expected.field("file_sha256", "folder_digest").asString("file_sha256"))
    }

    func testExplainsAMissingOrBrokenManifest() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tomobile-manifest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try readManifest(dir)) { XCTAssertTrue("\($0)".contains("manifest.json not found")) }
        try Data(#"{"model": "x","#.utf8).write(to: dir.appendingPathComponent("manifest.json"))
        XCTAssertThrowsError(try readManifest(dir)) { XCTAssertTrue("\($0)".contains("not valid")) }
        try Data(#"{"model": "x"}"#.utf8).write(to: dir.appendingPathComponent("manifest.json"))
        XCTAssertThrowsError(try readManifest(dir)) { XCTAssertTrue("\($0)".contains("missing \"model_config\"")) }
    }

    func testFollowsTheSharedWeightsLayout() throws {
        // A weight group (docs/shared_weights.md): two Core ML parts as functions of one package, two
        // ONNX graphs reading one external data file, which is verified like every listed file.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tomobile-manifest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data("{}".utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
        for name in ["denoiser.pte", "denoiser.mlpackage", "denoiser.onnx", "denoiser_tdtm.onnx", "denoiser.onnx.data"] {
            try Data(name.utf8).write(to: dir.appendingPathComponent(name))
        }
        func sha(_ name: String) -> String { sha256Hex(Array(name.utf8)) }
        let weights = #"{"path": "denoiser.onnx.data", "sha256": "\#(sha("denoiser.onnx.data"))"}"#
        let more = """
            {"format": "coreml", "part": "denoiser", "path": "denoiser.mlpackage", "sha256": "\(sha("denoiser.mlpackage"))", "function": "denoiser"},
            {"format": "coreml", "part": "denoiser_tdtm", "path": "denoiser.mlpackage", "sha256": "\(sha("denoiser.mlpackage"))", "function": "denoiser_tdtm"},
            {"format": "onnx", "part": "denoiser", "path": "denoiser.onnx", "sha256": "\(sha("denoiser.onnx"))", "weights": \(weights)},
            {"format": "onnx", "part": "denoiser_tdtm", "path": "denoiser_tdtm.onnx", "sha256": "\(sha("denoiser_tdtm.onnx"))", "weights": \(weights)}
            """
        try Data(fakeManifest(sha("denoiser.pte"), more: more, method: "denoiser").utf8).write(to: dir.appendingPathComponent("manifest.json"))
        let m = try readManifest(dir)
        XCTAssertEqual(try m.partsFor("coreml"), ["denoiser": PartFile("denoiser.mlpackage", function: "denoiser"),
                                                  "denoiser_tdtm": PartFile("denoiser.mlpackage", function: "denoiser_tdtm")])
        XCTAssertEqual(try m.partsFor("executorch")["denoiser"]?.methodName, "denoiser")
        XCTAssertEqual(Set(try m.partsFor("onnx").values.map { $0.weights }), ["denoiser.onnx.data"])
        for path in m.files.keys { _ = try m.verified(path) }
        try Data([0]).write(to: dir.appendingPathComponent("denoiser.onnx.data"))
        XCTAssertThrowsError(try m.verified("denoiser.onnx.data")) { XCTAssertTrue("\($0)".hasPrefix("denoiser.onnx.data was altered")) }
        XCTAssertEqual(PartFile("text_encoder.pte").methodName, "forward")
    }

    private func fakeManifest(_ sha: String, more: String = "", method: String? = nil) -> String {
        let methodField = method.map { #", "method": "\#($0)""# } ?? ""
        let rest = more.isEmpty ? "" : ",\n" + more
        return """
        {"model": "video-dit-tiny",
         "model_config": {"frames": 8, "size": 32, "channels": 3, "caption_len": 16, "caption_dim": 384},
         "io": {"denoiser_inputs": ["x", "t", "states", "mask", "guidance"]},
         "sampler": {"steps": 30, "guidance": 4.0, "shift": 2.0, "lpl_step": 15, "tdtm_steps": 15,
                     "timesteps": "discrete", "lpl_similarity": "original"},
         "artifacts": [{"format": "executorch", "part": "denoiser", "path": "denoiser.pte", "sha256": "\(sha)"\(methodField)}\(rest)],
         "files": {"tokenizer.json": "\(sha256Hex(Array("{}".utf8)))"}}
        """
    }
}

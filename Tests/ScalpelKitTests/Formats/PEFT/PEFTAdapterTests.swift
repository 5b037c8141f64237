import Foundation
import Testing
@testable import ScalpelKit

/// Paths of the PEFT-made fixtures (fixtures/peft, see make_peft_fixtures.py) and small helpers.
enum PEFTFixture {
    static let root = repositoryPath("fixtures/peft")

    static func adapter(_ name: String) -> String { root + "/adapters/" + name }
    static func merged(_ name: String) -> String { root + "/merged/" + name + "/model.safetensors" }
    static let llamaBase = root + "/llama_base"
    static let gpt2Base = root + "/gpt2_base"

    /// Every tensor of a checkpoint decoded to f32.
    static func floats(_ path: String) throws -> [String: [Float]] {
        let c = try CheckpointReader.open(path)
        var out: [String: [Float]] = [:]
        for t in c.tensors { out[t.name] = try FloatConversion.floats(try c.view(t.name)) }
        return out
    }

    /// max |a - b| / max |b|, the relative error measure of the merge tests.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        var diff = 0.0, scale = 0.0
        for i in 0..<a.count {
            diff = max(diff, abs(Double(a[i]) - Double(b[i])))
            scale = max(scale, abs(Double(b[i])))
        }
        return scale == 0 ? diff : diff / scale
    }
}

@Suite struct PEFTAdapterTests {
    @Test func readsRankAndAlphaPatternsAsPEFTMatchesThem() throws {
        let a = try LoRAAdapter.open(PEFTFixture.adapter("patterns"))
        func module(_ path: String) throws -> LoRAModule { try #require(a.modules.first { $0.path == path }) }
        // rank_pattern {"q_proj": 2, "layers.1.mlp.down_proj": 6, "embed_tokens": 3}, r 4
        // alpha_pattern {"v_proj": 3, "layers\.0\.self_attn\.o_proj": 5}, lora_alpha 8
        #expect(try module("model.layers.0.self_attn.q_proj").rank == 2)
        #expect(try module("model.layers.0.self_attn.q_proj").scaling == 4)
        #expect(try module("model.layers.1.mlp.down_proj").rank == 6)
        #expect(try module("model.layers.0.mlp.down_proj").rank == 4)
        #expect(try module("model.layers.1.self_attn.v_proj").scaling == 0.75)
        #expect(try module("model.layers.0.self_attn.o_proj").scaling == 1.25)
        #expect(try module("model.layers.1.self_attn.o_proj").scaling == 2)
        let embed = try module("model.embed_tokens")
        #expect(embed.kind == .embedding && embed.transposed && embed.rank == 3)
        #expect(embed.productShape == [32, 64] && embed.baseShape == [64, 32])
        #expect(a.modules.count == 15)
        #expect(Set(a.replacements.map(\.target)) == ["lm_head.weight", "model.embed_tokens.weight"])
    }

    @Test func readsRSLoRABiasAndDoRAParts() throws {
        let rs = try LoRAAdapter.open(PEFTFixture.adapter("rslora"))
        let q = try #require(rs.modules.first { $0.path == "model.layers.0.self_attn.q_proj" })
        #expect(abs(q.scaling - 4 / 8.0.squareRoot()) < 1e-15)
        #expect(q.biasName == "base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias")
        #expect(q.biasTargetName == "model.layers.0.self_attn.q_proj.bias")
        let dora = try LoRAAdapter.open(PEFTFixture.adapter("dora"))
        #expect(dora.usesDoRA && dora.modules.allSatisfy { $0.magnitudeName != nil })
        let fifo = try LoRAAdapter.open(PEFTFixture.adapter("gpt2_fifo"))
        let cAttn = try #require(fifo.modules.first { $0.path == "transformer.h.0.attn.c_attn" })
        #expect(cAttn.transposed && cAttn.productShape == [96, 32] && cAttn.baseShape == [32, 96])
    }

    @Test func rejectsARankThatDisagreesWithTheConfig() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let folder = dir.path
        let src = PEFTFixture.adapter("plain_b")
        try FileManager.default.copyItem(atPath: src + "/adapter_model.safetensors", toPath: folder + "/adapter_model.safetensors")
        let config = try String(contentsOfFile: src + "/adapter_config.json", encoding: .utf8)
            .replacingOccurrences(of: "\"r\": 2", with: "\"r\": 3")
        try config.write(toFile: folder + "/adapter_config.json", atomically: true, encoding: .utf8)
        #expect(throws: ScalpelError.malformed(file: folder, tensor: "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight",
                                               reason: "has rank 2 but the config gives this module r = 3")) {
            try LoRAAdapter.open(folder)
        }
    }

    @Test func writerRoundTripsAndChecksRanksAgainstTheConfig() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let folder = dir.file("adapter")
        let a: [Float] = (0..<8).map { Float($0) }, b: [Float] = (0..<6).map { Float($0) * 0.5 }
        let tensor = f32Tensor
        let path = "model.layers.0.self_attn.q_proj"
        let config = try AdapterConfig(r: 4, loraAlpha: 4, targetModules: [.string(path)],
                                       rankPattern: [(AdapterConfig.modulePattern(path), 2)],
                                       alphaPattern: [(AdapterConfig.modulePattern(path), 2)])
        #expect(config.rank(for: path) == 2 && config.scaling(for: path) == 1)
        #expect(config.rank(for: "model.layers.0.self_attn.q_projX") == 4)
        let wrong = [tensor(PEFTAdapterWriter.aKey(path), [4, 2], a), tensor(PEFTAdapterWriter.bKey(path), [3, 2], b)]
        #expect(throws: ScalpelError.self) { try PEFTAdapterWriter.write(tensors: wrong, config: config, to: folder) }
        #expect(!FileManager.default.fileExists(atPath: folder))

        let tensors = [tensor(PEFTAdapterWriter.aKey(path), [2, 4], a), tensor(PEFTAdapterWriter.bKey(path), [3, 2], b)]
        try PEFTAdapterWriter.write(tensors: tensors, config: config, to: folder)
        let back = try LoRAAdapter.open(folder)
        #expect(back.modules.map(\.path) == [path])
        #expect(back.modules[0].rank == 2 && back.modules[0].scaling == 1 && back.modules[0].productShape == [3, 4])
        #expect(try FloatConversion.floats(try back.checkpoint.view(PEFTAdapterWriter.aKey(path))) == a)
        #expect(back.checkpoint.metadata["format"]?.stringValue == "pt")
        let json = try String(contentsOfFile: folder + "/adapter_config.json", encoding: .utf8)
        #expect(json.contains("\"peft_type\": \"LORA\"") && json.contains("\"model\\\\.layers\\\\.0\\\\.self_attn\\\\.q_proj\": 2"))
    }
}

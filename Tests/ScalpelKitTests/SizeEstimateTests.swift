import Foundation
import Testing
@testable import ScalpelKit

/// `SizeEstimate` equals the size `quantize` writes, for every type and the layouts' edge cases.
@Suite struct SizeEstimateTests {
    /// A model with the cases quantize treats specially: F16 and BF16 weights, 1-D F16 biases (F32 in
    /// GGUF), rows that do not fill ggml blocks (F16 fallback) or int4 groups (kept), an embedding, an
    /// odd element count, an integer tensor.
    static func model(_ dir: TempDir) throws -> String {
        var rng = TestRandom(seed: 5)
        func values(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &rng) } }
        let tensors = [
            QuantizeCommandTests.tensor("embeddings.word_embeddings.weight", [40, 64], values(2560)),
            QuantizeCommandTests.tensor("layer.0.q.weight", [128, 256], values(32768), .f16),
            QuantizeCommandTests.tensor("layer.0.q.bias", [128], values(128), .f16),
            QuantizeCommandTests.tensor("layer.0.k.weight", [64, 256], values(16384), .bf16),
            QuantizeCommandTests.tensor("layer.0.odd.weight", [33, 48], values(1584)),
            QuantizeCommandTests.tensor("layer.0.v.weight", [96, 384], values(36864)),
            OutputTensor(name: "position_ids", type: .plain(.i64), shape: [1, 8], content: .compute { buf in buf.initializeMemory(as: UInt8.self, repeating: 0); return .none }),
        ]
        let path = dir.file("in.safetensors")
        try SafetensorsWriter.write(tensors, metadata: Metadata([("format", .string("pt"))]), to: path)
        return path
    }

    static func fileSize(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as! NSNumber).intValue
    }

    static func check(_ input: String, _ options: Quantize.Options, _ dir: TempDir, exact: Bool = true) throws {
        let ckpt = try CheckpointReader.open(input)
        let estimate = try SizeEstimate.estimate(ckpt, options: options)
        let gguf = Quantize.family(options) == .gguf || (Quantize.family(options) == .plain && ckpt.format == .gguf)
        let out = dir.file("out-\(options.type.rawValue)-\(UUID().uuidString.prefix(6))" + (gguf ? ".gguf" : ".safetensors"))
        let dest = try Destination(path: out)
        let plan = try Quantize.plan(ckpt, for: dest, options: options)
        let report = try plan.written(as: QuantizeReport.self)
        let real = try fileSize(out)
        if exact {
            #expect(estimate.estimatedBytes == real, "\(options.type) from \(input)")
        } else {
            #expect(abs(Double(estimate.estimatedBytes - real)) <= 1e-3 * Double(real), "\(options.type)")
        }
        if options.type != .f32 { #expect(estimate.tensorsQuantized == report.entries.filter(\.quantized).count) }
    }

    /// A small Llama-named GGUF, F16 weights and F32 norms, as llama.cpp's rules see it: rows of 256 (the
    /// K types apply) and of 64 and 96 (attn_output, ffn_down: llama.cpp's row fallback).
    static func llamaGGUF(_ dir: TempDir) throws -> String {
        var rng = TestRandom(seed: 9)
        func values(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &rng) } }
        func t(_ name: String, _ shape: [Int], _ dtype: DType = .f16) -> OutputTensor {
            QuantizeCommandTests.tensor(name, shape, values(shape.reduce(1, *)), dtype)
        }
        var tensors = [t("token_embd.weight", [32, 256])]
        for b in 0..<2 {
            tensors += [t("blk.\(b).attn_norm.weight", [256], .f32), t("blk.\(b).attn_q.weight", [64, 256]),
                        t("blk.\(b).attn_k.weight", [32, 256]), t("blk.\(b).attn_v.weight", [32, 256]),
                        t("blk.\(b).attn_output.weight", [256, 64]), t("blk.\(b).ffn_norm.weight", [256], .f32),
                        t("blk.\(b).ffn_gate.weight", [96, 256]), t("blk.\(b).ffn_up.weight", [96, 256]),
                        t("blk.\(b).ffn_down.weight", [256, 96])]
        }
        tensors += [t("output_norm.weight", [256], .f32), t("output.weight", [32, 256])]
        let metadata = Metadata([("general.architecture", .string("llama")), ("llama.block_count", .uint32(2)),
                                 ("llama.attention.head_count", .uint32(8)), ("llama.attention.head_count_kv", .uint32(2)),
                                 ("general.file_type", .uint32(1))])
        let path = dir.file("llama-f16.gguf")
        try GGUFWriter.write(tensors, metadata: metadata, to: path)
        return path
    }

    /// Every name `--estimate all` offers (tensor types and llama-quantize presets), parsed as quantize
    /// parses `--type`.
    static var everyType: [(name: String, options: Quantize.Options)] {
        SizeEstimate.typeNames.map { ($0, SizeEstimate.options(forType: $0)!) }
    }

    @Test func typeNamesCoverEveryTypeAndPreset() {
        let names = SizeEstimate.typeNames
        for t in QuantType.allCases { #expect(names.contains(t.rawValue)) }
        for p in LlamaFileType.all { #expect(names.contains(p.name) || names.contains(p.name.lowercased()), "\(p.name)") }
        #expect(Set(names.map { $0.lowercased() }).count == names.count)  // Q8_0 and q8_0 are one run
        #expect(SizeEstimate.options(forType: "q4_k_m")?.fileType?.name == "Q4_K_M")
        #expect(SizeEstimate.options(forType: "q4_k")?.fileType == nil)
        #expect(SizeEstimate.options(forType: "q7_k") == nil)
    }

    @Test func everyTypeAndPresetFromSafetensors() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let input = try Self.model(dir)
        for (_, options) in Self.everyType {
            try Self.check(input, options, dir)
        }
    }

    @Test func everyTypeAndPresetFromGGUF() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let input = try Self.llamaGGUF(dir)
        let q4km = try SizeEstimate.estimate(try CheckpointReader.open(input, headerOnly: true), options: SizeEstimate.options(forType: "Q4_K_M")!)
        // llama.cpp's mix: attn_v of the first layers and output get more bits than Q4_K.
        #expect(q4km.tensorTypes.map(\.type).contains("Q6_K") && q4km.tensorTypes.map(\.type).contains("Q4_K"))
        for (_, options) in Self.everyType where Quantize.family(options) == .gguf || Quantize.family(options) == .plain {
            try Self.check(input, options, dir)
        }
    }

    @Test func quantizedGGUF() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let f16 = try Self.llamaGGUF(dir)
        let q4km = dir.file("q4km.gguf")
        _ = try Quantize.plan(try CheckpointReader.open(f16), for: try Destination(path: q4km), options: SizeEstimate.options(forType: "Q4_K_M")!)
            .written(as: QuantizeReport.self)
        for name in ["Q4_K_M", "q8_0", "Q3_K_L", "q4_0", "f16", "nf4"] {
            let options = SizeEstimate.options(forType: name)!
            try Self.check(q4km, options, dir)
            let e = try SizeEstimate.estimate(try CheckpointReader.open(q4km, headerOnly: true), options: options)
            #expect((e.tensorsRequantized > 0) == (name != "Q4_K_M"), "\(name)")
        }
    }

    @Test func layoutOptions() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let input = try Self.model(dir)
        var o = Quantize.Options(type: .nf4)
        o.doubleQuant = true
        o.blockSize = 128
        o.selection.includeEmbeddings = true
        try Self.check(input, o, dir, exact: false)
        o = Quantize.Options(type: .int4)
        o.asymmetric = true
        o.groupSize = 64
        try Self.check(input, o, dir)
        o = Quantize.Options(type: .int8)
        o.int8Format = .compressedTensors
        try Self.check(input, o, dir)
        o = Quantize.Options(type: .q4_0)
        o.typeFor = [(glob: "*.v.weight", type: .q8_0), (glob: "*.bias", type: .f16)]
        try Self.check(input, o, dir)
    }

    @Test func quantizedInputs() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let input = try Self.model(dir)
        // A bitsandbytes or compressed-tensors model requantized to GGUF and to another safetensors layout.
        for (first, out) in [(QuantType.nf4, "nf4.safetensors"), (.int4, "int4.safetensors")] {
            let dest = try Destination(path: dir.file(out))
            let plan = try Quantize.plan(try CheckpointReader.open(input), for: dest, options: Quantize.Options(type: first))
            _ = try plan.written(as: QuantizeReport.self)
            for type in [QuantType.q8_0, .q4_1, .f16, .int8] {
                var options = Quantize.Options(type: type)
                options.allowRequantize = true  // a quantized input is refused without it (llama-quantize's rule)
                try Self.check(dir.file(out), options, dir)
            }
        }
    }
}

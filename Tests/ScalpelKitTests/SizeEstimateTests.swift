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

    @Test func everyTypeFromSafetensors() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let input = try Self.model(dir)
        for type in QuantType.allCases where SizeEstimate.typeNames.contains(type.rawValue) {
            try Self.check(input, Quantize.Options(type: type), dir)
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
        // (A GGUF input is quantized with llama.cpp's per-tensor rules, which the estimate does not apply
        // yet: issue 15 stays open for that.)
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

import Foundation
import Testing
@testable import ScalpelKit

/// IQ4_NL and IQ4_XS as `quantize --type` values and llama-quantize presets: parsing, llama.cpp's
/// per-tensor rules for the two file types (worked out by hand from llama.cpp 0c1e57098's
/// `llama_tensor_get_type`; tests/interop/test_presets.py compares with llama-quantize itself), the
/// decision for rows that do not fill a block, a run end to end, and dequantization.
@Suite struct IQ4QuantizeTests {
    typealias Rules = LlamaQuantRulesTests

    @Test func typesAndPresetsParse() {
        let nl = Quantize.parseType("iq4_nl"), xs = Quantize.parseType("IQ4_XS")
        #expect(nl?.type == .iq4_nl && nl?.fileType?.name == "IQ4_NL" && nl?.fileType?.id == 25)
        #expect(xs?.type == .iq4_xs && xs?.fileType?.name == "IQ4_XS" && xs?.fileType?.id == 30)
        #expect(Quantize.parseType("Iq4_Xs")?.fileType?.id == 30)
        #expect(QuantType.iq4_nl.ggmlType == .iq4_nl && QuantType.iq4_xs.ggmlType == .iq4_xs)
        #expect(QuantType.iq4_nl.ggufFileType == 25 && QuantType.iq4_xs.ggufFileType == 30)
        #expect(QuantType(ggml: .iq4_xs) == .iq4_xs && QuantType(ggml: .iq4_nl) == .iq4_nl)
        #expect(LlamaFileType(mostly: .iq4_xs)?.name == "IQ4_XS" && LlamaFileType(mostly: .iq4_nl)?.name == "IQ4_NL")
        #expect(LlamaFileType(name: "IQ4_XS")?.defaultType == .iq4_xs)
        #expect(Quantize.family(Quantize.Options(type: .iq4_xs)) == .gguf)
        // --estimate all: each once, as a tensor type (the presets of the same name are that run).
        #expect(SizeEstimate.typeNames.filter { $0.lowercased().hasPrefix("iq4") } == ["iq4_nl", "iq4_xs"])
    }

    @Test func presetRulesFollowLlamaCpp() throws {
        // 16 layers, GQA 4: attn_v Q5_K; the first 16/8 = 2 ffn_down Q5_K without an importance matrix.
        for preset in ["IQ4_NL", "IQ4_XS"] {
            let t = try Rules.types(Rules.llama(layers: 16), preset)
            for i in 0..<16 {
                #expect(t["blk.\(i).attn_v.weight"] == "Q5_K", "\(preset) layer \(i)")
                #expect(t["blk.\(i).ffn_down.weight"] == (i < 2 ? "Q5_K" : preset), "\(preset) layer \(i)")
                #expect(t["blk.\(i).attn_q.weight"] == preset && t["blk.\(i).attn_output.weight"] == preset)
                #expect(t["blk.\(i).attn_norm.weight"] == "F32")
            }
            #expect(t["output.weight"] == "Q6_K" && t["token_embd.weight"] == preset)
            // With an importance matrix ffn_down keeps the default type.
            let imatrix = try Rules.types(Rules.llama(layers: 16), preset) { $0.hasImatrix = true }
            #expect(imatrix["blk.0.ffn_down.weight"] == preset && imatrix["blk.1.ffn_down.weight"] == preset)
            // Without GQA attn_v keeps it too; 8 experts give attn_output Q5_K and attn_v Q8_0.
            let mha = try Rules.types(Rules.llama(layers: 4), preset, heads: (32, 32))
            #expect(mha["blk.0.attn_v.weight"] == preset)
            let moe = try Rules.types(Rules.llama(layers: 4), preset, experts: 8)
            #expect(moe["blk.0.attn_output.weight"] == "Q5_K" && moe["blk.0.attn_v.weight"] == "Q8_0")
            // --pure: no mix.
            let pure = try Rules.types(Rules.llama(layers: 16), preset) { $0.pure = true }
            #expect(pure["blk.0.attn_v.weight"] == preset && pure["blk.0.ffn_down.weight"] == preset && pure["output.weight"] == preset)
        }
    }

    @Test func rowsThatDoNotFillABlock() throws {
        // Rows of 384 (MiniLM): IQ4_XS falls back to IQ4_NL; a tied token_embd is the output: Q8_0.
        let bert = try Rules.types(Rules.llama(layers: 2, columns: 384, ffn: 1536, tied: true), "IQ4_XS", heads: (12, 12))
        #expect(bert["blk.0.attn_q.weight"] == "IQ4_NL" && bert["blk.0.ffn_down.weight"] == "IQ4_XS")
        #expect(bert["token_embd.weight"] == "Q8_0")
        // Rows of 688 (the tiny Llama's ffn_down) fit neither: F16.
        #expect(LlamaQuantRules.fallback(.iq4_xs, columns: 384) == .iq4_nl)
        #expect(LlamaQuantRules.fallback(.iq4_xs, columns: 688) == .f16)
        #expect(LlamaQuantRules.fallback(.iq4_nl, columns: 688) == .f16)
        #expect(LlamaQuantRules.fallback(.iq4_nl, columns: 96) == .iq4_nl)
    }

    @Test func pureRunEndToEnd() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let a = normalSamples(8 * 512, seed: 3), b = normalSamples(4 * 96, seed: 4), c = normalSamples(2 * 48, seed: 5)
        let tensors = [f32Tensor("blk.0.ffn_up.weight", [8, 512], a), f32Tensor("blk.0.attn_q.weight", [4, 96], b),
                       f32Tensor("blk.0.attn_k.weight", [2, 48], c), f32Tensor("blk.0.attn_norm.weight", [96], Array(b[0..<96]))]
        var options = Quantize.Options(type: .iq4_xs)
        options.fileType = LlamaFileType(name: "IQ4_XS")
        options.pure = true
        let (q, out) = try QuantizeCommandTests.quantize(tensors, to: "out.gguf", in: dir, options)
        #expect(q.metadata["general.file_type"] == .uint32(30))
        #expect(q.metadata["general.quantization_version"] == .uint32(2))
        func type(_ name: String) -> String? { out.info(named: name)?.type.description }
        #expect(type("blk.0.ffn_up.weight") == "IQ4_XS" && type("blk.0.attn_q.weight") == "IQ4_NL")
        #expect(type("blk.0.attn_k.weight") == "F16" && type("blk.0.attn_norm.weight") == "F32")
        // The bytes are KQuant's (checked against ggml by test_kquants.py), and read back close.
        for (name, values, ggml, row) in [("blk.0.ffn_up.weight", a, GGMLType.iq4_xs, 512), ("blk.0.attn_q.weight", b, .iq4_nl, 96)] {
            var want = [UInt8](repeating: 0, count: values.count / ggml.blockSize * ggml.typeSize)
            try values.withUnsafeBufferPointer { v in try want.withUnsafeMutableBytes { try KQuant.quantize(ggml, v, rowLength: row, into: $0) } }
            #expect(try QuantizeCommandTests.bytes(out, name) == want, "\(name)")
            let e = QuantizeCommandTests.error(values, try QuantizeCommandTests.floats(out, name))
            #expect(e.relativeRMSE > 0.02 && e.relativeRMSE < 0.12, "\(name): \(e.relativeRMSE)")
        }
    }

    @Test func dequantizesHandMadeBlocks() throws {
        let grid: [Float] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]
        // IQ4_NL: d = 0.5; byte j = (15 - j) << 4 | j: element j is grid[j], element j + 16 grid[15 - j].
        var nl: [UInt8] = withUnsafeBytes(of: Float16(0.5).bitPattern.littleEndian, Array.init)
        var want = [Float](repeating: 0, count: 32)
        for j in 0..<16 {
            nl.append(UInt8((15 - j) << 4 | j))
            want[j] = 0.5 * grid[j]
            want[j + 16] = 0.5 * grid[15 - j]
        }
        var out = [Float](repeating: 0, count: 32)
        try nl.withUnsafeBytes { s in try out.withUnsafeMutableBufferPointer { try GGMLDequantize.dequantize(.iq4_nl, s, into: $0) } }
        #expect(out == want)
        // IQ4_XS: d = 0.25; sub-block ib has ls = 32 + ib - 4 (6 bits: low nibble in scales_l, high two in
        // scales_h); every quant byte 0x9A (low nibble 10, high nibble 9).
        let ls: [Int] = (0..<8).map { 28 + $0 }
        var xs: [UInt8] = withUnsafeBytes(of: Float16(0.25).bitPattern.littleEndian, Array.init)
        var scalesH: UInt16 = 0
        for ib in 0..<8 {
            let high = UInt16(ls[ib] >> 4)
            scalesH |= high << UInt16(2 * ib)
        }
        xs += withUnsafeBytes(of: scalesH.littleEndian, Array.init)
        for k in 0..<4 {
            let low = ls[2 * k] & 0xF, high = ls[2 * k + 1] & 0xF
            xs.append(UInt8(low | high << 4))
        }
        xs += [UInt8](repeating: 0x9A, count: 128)
        var outXS = [Float](repeating: 0, count: 256)
        try xs.withUnsafeBytes { s in try outXS.withUnsafeMutableBufferPointer { try GGMLDequantize.dequantize(.iq4_xs, s, into: $0) } }
        for ib in 0..<8 {
            let dl: Float = 0.25 * Float(ls[ib] - 32)
            #expect(Array(outXS[(32 * ib)..<(32 * ib + 16)]) == [Float](repeating: dl * grid[10], count: 16), "sub-block \(ib)")
            #expect(Array(outXS[(32 * ib + 16)..<(32 * ib + 32)]) == [Float](repeating: dl * grid[9], count: 16), "sub-block \(ib)")
        }
    }

    @Test func quantizeThenDequantizeIsClose() throws {
        let x = normalSamples(4 * 1024, seed: 9)
        for type in KQuant.iq4Types {
            var bytes = [UInt8](repeating: 0, count: x.count / type.blockSize * type.typeSize)
            try x.withUnsafeBufferPointer { v in try bytes.withUnsafeMutableBytes { try KQuant.quantize(type, v, rowLength: 1024, into: $0) } }
            var back = [Float](repeating: 0, count: x.count)
            try bytes.withUnsafeBytes { s in try back.withUnsafeMutableBufferPointer { try GGMLDequantize.dequantize(type, s, into: $0) } }
            let e = QuantizeCommandTests.error(x, back)
            #expect(e.relativeRMSE > 0.03 && e.relativeRMSE < 0.11, "\(type.name): \(e.relativeRMSE)")
        }
    }
}

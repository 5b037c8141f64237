import Foundation
import Testing
@testable import ScalpelKit

/// llama-quantize's per-tensor rules on synthetic models, with the expected types worked out by hand from
/// llama.cpp 0c1e57098's `llama_tensor_get_type` (the interop tests compare with llama-quantize itself).
@Suite struct LlamaQuantRulesTests {
    static let q2 = GGMLType(name: "Q2_K")!, q3 = GGMLType(name: "Q3_K")!

    /// A Llama-shaped model: token_embd, per-layer attention and FFN, norms, output (unless tied).
    static func llama(layers: Int, columns: Int = 4096, ffn: Int = 11008, tied: Bool = false) -> [LlamaQuantRules.Tensor] {
        var t: [LlamaQuantRules.Tensor] = [.init(name: "token_embd.weight", shape: [32000, columns], type: .f16)]
        for i in 0..<layers {
            for (n, shape) in [("attn_q", [columns, columns]), ("attn_k", [columns / 4, columns]), ("attn_v", [columns / 4, columns]),
                               ("attn_output", [columns, columns]), ("ffn_gate", [ffn, columns]), ("ffn_up", [ffn, columns]),
                               ("ffn_down", [columns, ffn])] {
                t.append(.init(name: "blk.\(i).\(n).weight", shape: shape, type: .f16))
            }
            t.append(.init(name: "blk.\(i).attn_norm.weight", shape: [columns], type: .f32))
        }
        t.append(.init(name: "output_norm.weight", shape: [columns], type: .f32))
        if !tied { t.append(.init(name: "output.weight", shape: [32000, columns], type: .f16)) }
        return t
    }

    static func types(_ tensors: [LlamaQuantRules.Tensor], _ preset: String, heads: (Int, Int) = (32, 8), experts: Int = 0,
                      arch: String = "llama", configure: (inout LlamaQuantRules.Params) -> Void = { _ in }) throws -> [String: String] {
        let layers = LlamaQuantRules.layerCount(tensors.map(\.name))
        var p = LlamaQuantRules.Params(fileType: LlamaFileType(name: preset)!)
        configure(&p)
        let model = LlamaQuantRules.Model(architecture: arch, layerCount: layers, headCount: heads.0, headCountKV: heads.1, expertCount: experts)
        let out = try LlamaQuantRules.targetTypes(tensors, model: model, params: p)
        return Dictionary(uniqueKeysWithValues: zip(tensors.map(\.name), out.map(\.name)))
    }

    @Test func useMoreBitsFollowsLlamaCpp() {
        // n = 32: the first 4, the last 4 (28...31) and 6, 9, 12, ..., 27.
        let more = (0..<32).filter { LlamaQuantRules.useMoreBits($0, 32) }
        #expect(more == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31])
    }

    @Test func q4KMBumpsAttnVAndFfnDownByLayer() throws {
        let t = try Self.types(Self.llama(layers: 32), "Q4_K_M")
        let more: Set = [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        for i in 0..<32 {
            #expect(t["blk.\(i).attn_v.weight"] == (more.contains(i) ? "Q6_K" : "Q4_K"), "layer \(i)")
            #expect(t["blk.\(i).ffn_down.weight"] == (more.contains(i) ? "Q6_K" : "Q4_K"), "layer \(i)")
            #expect(t["blk.\(i).attn_q.weight"] == "Q4_K")
            #expect(t["blk.\(i).attn_norm.weight"] == "F32")
        }
        #expect(t["output.weight"] == "Q6_K")
        #expect(t["token_embd.weight"] == "Q4_K")  // untied: the token embedding keeps the default
        #expect(t["output_norm.weight"] == "F32")
    }

    @Test func attnVCounterRunsInLlamaCppOrderNotFileOrder() throws {
        // 12 layers listed in file order: llama.cpp visits blk.10 and blk.11 after blk.9 (numeric order),
        // so the counter equals the layer number; Q3_K_M bumps the first two attn_v to Q5_K.
        let t = try Self.types(Self.llama(layers: 12).reversed(), "Q3_K_M")
        #expect(t["blk.0.attn_v.weight"] == "Q5_K" && t["blk.1.attn_v.weight"] == "Q5_K")
        #expect(t["blk.2.attn_v.weight"] == "Q4_K" && t["blk.10.attn_v.weight"] == "Q4_K")
        #expect(LlamaQuantRules.order(["blk.10.a", "output.weight", "blk.2.b", "blk.2.a"]) == [1, 3, 2, 0])
    }

    @Test func q2KUsesTheGQARatio() throws {
        let gqa4 = try Self.types(Self.llama(layers: 8), "Q2_K", heads: (32, 8))
        let mha = try Self.types(Self.llama(layers: 8), "Q2_K", heads: (32, 32))
        #expect(gqa4["blk.0.attn_v.weight"] == "Q4_K" && mha["blk.0.attn_v.weight"] == "Q3_K")
        #expect(gqa4["blk.3.ffn_down.weight"] == "Q3_K" && gqa4["blk.3.attn_output.weight"] == "Q3_K")
        #expect(gqa4["blk.3.attn_q.weight"] == "Q2_K")
    }

    @Test func tiedEmbeddingsGetTheOutputRule() throws {
        let t = try Self.types(Self.llama(layers: 2, tied: true), "Q4_K_S")
        #expect(t["token_embd.weight"] == "Q6_K")
        let q8 = try Self.types(Self.llama(layers: 2, tied: true), "Q8_0")
        #expect(q8["token_embd.weight"] == "Q8_0")
    }

    @Test func rowFallbacks() {
        #expect(LlamaQuantRules.fallback(.q4_K, columns: 384).name == "Q5_0")
        #expect(LlamaQuantRules.fallback(.q5_K, columns: 384).name == "Q5_1")
        #expect(LlamaQuantRules.fallback(.q6_K, columns: 384).name == "Q8_0")
        #expect(LlamaQuantRules.fallback(Self.q2, columns: 384).name == "Q4_0")
        #expect(LlamaQuantRules.fallback(Self.q3, columns: 688).name == "F16")
        #expect(LlamaQuantRules.fallback(.q8_0, columns: 40).name == "F16")
        #expect(LlamaQuantRules.fallback(.q4_K, columns: 512).name == "Q4_K")
    }

    @Test func bertNeverQuantizesPositionAndTokenTypes() throws {
        let tensors: [LlamaQuantRules.Tensor] = [
            .init(name: "token_embd.weight", shape: [30522, 384], type: .f32),
            .init(name: "position_embd.weight", shape: [512, 384], type: .f32),
            .init(name: "token_types.weight", shape: [2, 384], type: .f32),
            .init(name: "token_embd_norm.weight", shape: [384], type: .f32),
            .init(name: "blk.0.attn_q.weight", shape: [384, 384], type: .f32),
            .init(name: "blk.0.ffn_down.weight", shape: [384, 1536], type: .f32),
            .init(name: "blk.0.attn_output_norm.weight", shape: [384], type: .f32),
            .init(name: "blk.0.ffn_up.bias", shape: [1536], type: .f32),
            .init(name: "row.weight", shape: [1, 384], type: .f32),  // one row: 1-D for ggml
        ]
        let q8 = try Self.types(tensors, "Q8_0", heads: (12, 12), arch: "bert")
        #expect(q8["position_embd.weight"] == "F32" && q8["token_types.weight"] == "F32" && q8["row.weight"] == "F32")
        #expect(q8["token_embd.weight"] == "Q8_0" && q8["blk.0.attn_q.weight"] == "Q8_0")
        let k = try Self.types(tensors, "Q4_K_M", heads: (12, 12), arch: "bert")
        #expect(k["token_embd.weight"] == "Q8_0")       // tied, 384 % 256 != 0: Q8_0
        #expect(k["blk.0.attn_q.weight"] == "Q5_0")     // Q4_K falls back on 384-wide rows
        #expect(k["blk.0.ffn_down.weight"] == "Q6_K")   // layer 0 of 1: use_more_bits
        #expect(k["position_embd.weight"] == "F32")
    }

    @Test func controls() throws {
        let model = Self.llama(layers: 4)
        let pure = try Self.types(model, "Q4_K_M") { $0.pure = true }
        #expect(pure["blk.0.attn_v.weight"] == "Q4_K" && pure["output.weight"] == "Q4_K" && pure["blk.0.ffn_down.weight"] == "Q4_K")
        let o = try Self.types(model, "Q4_K_M") { $0.outputTensorType = .q8_0; $0.tokenEmbeddingType = .f16 }
        #expect(o["output.weight"] == "Q8_0" && o["token_embd.weight"] == "F16")
        let leave = try Self.types(model, "Q4_K_M") { $0.quantizeOutputTensor = false }
        #expect(leave["output.weight"] == "F16")
        let manual = try Self.types(model, "Q4_K_M") { $0.tensorTypes = [("ATTN_V", .q8_0), ("ffn_(up|gate)", .q5_K)] }
        #expect(manual["blk.0.attn_v.weight"] == "Q8_0" && manual["blk.2.ffn_up.weight"] == "Q5_K" && manual["blk.2.ffn_gate.weight"] == "Q5_K")
        // ffn_down keeps the mixture: of 4 layers, use_more_bits picks 2 and 3.
        #expect(manual["blk.0.ffn_down.weight"] == "Q4_K" && manual["blk.2.ffn_down.weight"] == "Q6_K")
        let imatrix = try Self.types(Self.llama(layers: 16), "Q4_0") { $0.hasImatrix = true }
        #expect(imatrix["blk.0.ffn_down.weight"] == "Q4_1" && imatrix["blk.1.ffn_down.weight"] == "Q4_1")
        #expect(imatrix["blk.2.ffn_down.weight"] == "Q4_0" && imatrix["output.weight"] == "Q6_K")
        #expect(throws: ScalpelError.self) { try Self.types(model, "Q4_K_M") { $0.tensorTypes = [("(", .q8_0)] } }
    }

    @Test func presetsParse() {
        #expect(Quantize.parseType("q4_k_m")?.fileType?.id == 15)
        #expect(Quantize.parseType("Q8_0")?.fileType?.id == 7)
        #expect(Quantize.parseType("bf16")?.fileType?.id == 32)
        #expect(Quantize.parseType("nf4")?.fileType == nil)
        #expect(Quantize.parseType("Q9_K") == nil)
        #expect(LlamaFileType(mostly: .q4_K)?.name == "Q4_K_S")
    }

    @Test func huggingFaceNamesByRole() {
        let cases = [
            ("model.layers.3.self_attn.q_proj.weight", "blk.3.attn_q.weight"),
            ("model.layers.3.mlp.down_proj.weight", "blk.3.ffn_down.weight"),
            ("model.embed_tokens.weight", "token_embd.weight"),
            ("lm_head.weight", "output.weight"),
            ("model.norm.weight", "output_norm.weight"),
            ("encoder.layer.0.attention.self.query.weight", "blk.0.attn_q.weight"),
            ("encoder.layer.0.attention.output.dense.weight", "blk.0.attn_output.weight"),
            ("encoder.layer.0.output.dense.weight", "blk.0.ffn_down.weight"),
            ("encoder.layer.0.intermediate.dense.weight", "blk.0.ffn_up.weight"),
            ("embeddings.position_embeddings.weight", "position_embd.weight"),
            ("embeddings.token_type_embeddings.weight", "token_types.weight"),
            ("transformer.h.2.attn.c_attn.weight", "blk.2.attn_qkv.weight"),
        ]
        for (hf, llama) in cases { #expect(LlamaTensorNames.llamaName(hf) == llama, "\(hf)") }
        #expect(LlamaTensorNames.llamaName("pooler.dense.weight") == nil)
    }
}

/// The importance matrix readers: legacy `.dat` and GGUF, values as llama-quantize uses them.
@Suite struct ImportanceMatrixTests {
    static func dat(_ entries: [(String, Int32, [Float])], chunks: Int32? = nil, dataset: String? = nil) -> [UInt8] {
        var b = [UInt8]()
        func i32(_ v: Int32) { withUnsafeBytes(of: v.littleEndian) { b += $0 } }
        i32(Int32(entries.count))
        for (name, ncall, values) in entries {
            i32(Int32(name.utf8.count)); b += Array(name.utf8)
            i32(ncall); i32(Int32(values.count))
            for v in values { withUnsafeBytes(of: v) { b += $0 } }
        }
        if let chunks { i32(chunks) }
        if let dataset { i32(Int32(dataset.utf8.count)); b += Array(dataset.utf8) }
        return b
    }

    @Test func legacyValuesAreDividedByTheCallCount() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        writeBytes(Self.dat([("blk.0.attn_q.weight", 4, [4, 8, 2]), ("blk.0.ffn_up.weight", 0, [3, 5])], chunks: 7, dataset: "wiki.txt"),
                   to: dir.file("m.dat"))
        let m = try ImportanceMatrix.read(dir.file("m.dat"))
        #expect(m.isLegacy && m.chunkCount == 7 && m.datasets == ["wiki.txt"])
        #expect(m.entries["blk.0.attn_q.weight"] == [1, 2, 0.5])
        #expect(m.entries["blk.0.ffn_up.weight"] == [3, 5])  // ncall 0: the sums as they are
        let only = m.filtered(include: ["attn"], exclude: [])
        #expect(Array(only.entries.keys) == ["blk.0.attn_q.weight"])
        #expect(m.filtered(include: [], exclude: ["attn"]).entries.keys.sorted() == ["blk.0.ffn_up.weight"])
        let meta = m.metadata(path: "m.dat")
        #expect(meta.map(\.0) == ["quantize.imatrix.file", "quantize.imatrix.dataset", "quantize.imatrix.entries_count", "quantize.imatrix.chunks_count"])
    }

    @Test func malformedLegacyFilesAreRefusedBeforeAllocating() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let good = Self.dat([("a.weight", 1, [1, 2, 3, 4])])
        var huge = good
        huge.replaceSubrange(0..<4, with: [0xff, 0xff, 0xff, 0x7f])           // 2^31-1 entries in 32 bytes
        var longName = good
        longName.replaceSubrange(4..<8, with: [0x00, 0x00, 0x00, 0x40])       // a 1 GiB name
        var manyValues = good
        manyValues.replaceSubrange(20..<24, with: [0x00, 0x00, 0x00, 0x10])   // 2^28 values
        for (i, bytes) in [[UInt8](), [0, 0, 0, 0], huge, longName, manyValues, Array(good.prefix(good.count - 2))].enumerated() {
            writeBytes(bytes, to: dir.file("bad\(i).dat"))
            #expect(throws: ScalpelError.self) { try ImportanceMatrix.read(dir.file("bad\(i).dat")) }
        }
    }

    @Test func ggufValuesAreSumsOverCounts() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let metadata = Metadata([("imatrix.datasets", .array(elementType: 8, [.string("text.txt")])),
                                 ("imatrix.chunk_count", .uint32(3)), ("imatrix.chunk_size", .uint32(64))])
        // Two experts of 2 columns: counts 2 and 0 (the second becomes ones).
        try GGUFWriter.write([f32Tensor("blk.0.ffn_up_exps.weight.in_sum2", [2, 2], [2, 4, 6, 8]),
                              f32Tensor("blk.0.ffn_up_exps.weight.counts", [2, 1], [2, 0])], metadata: metadata, to: dir.file("m.gguf"))
        let m = try ImportanceMatrix.read(dir.file("m.gguf"))
        #expect(!m.isLegacy && m.chunkCount == 3 && m.datasets == ["text.txt"])
        #expect(m.entries["blk.0.ffn_up_exps.weight"] == [1, 2, 1, 1])
        // Without the imatrix metadata it is refused (llama-quantize: "missing imatrix metadata").
        try GGUFWriter.write([f32Tensor("a.in_sum2", [2], [1, 2]), f32Tensor("a.counts", [1], [1])], metadata: Metadata(), to: dir.file("plain.gguf"))
        #expect(throws: ScalpelError.self) { try ImportanceMatrix.read(dir.file("plain.gguf")) }
    }
}

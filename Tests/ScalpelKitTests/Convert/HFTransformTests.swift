import Foundation
import Testing
@testable import ScalpelKit

/// The per-architecture tensor transforms of HF <-> GGUF conversion, and the name tables.
struct HFTransformTests {
    func apply(_ t: HFTransform?, _ values: [Float]) -> [Float] {
        var v = values
        v.withUnsafeMutableBufferPointer { t?.apply($0) }
        return v
    }

    @Test func gpt2Conv1DIsTransposedAndBack() {
        let shape = [2, 3]  // Conv1D: in x out
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        let gpt2 = HFGPT2.gpt2
        let fwd = HFTransform.transpose(shape)
        #expect(fwd?.shape == [3, 2])
        #expect(apply(fwd, values) == [1, 4, 2, 5, 3, 6])
        #expect(apply(HFTransform.transpose([3, 2]), apply(fwd, values)) == values)
        #expect(gpt2.ggufName("transformer.h.3.attn.c_attn.weight") == "blk.3.attn_qkv.weight")
        #expect(gpt2.ggufName("h.3.mlp.c_fc.bias") == "blk.3.ffn_up.bias")  // a bare GPT2Model's names
        #expect(gpt2.ggufName("transformer.wpe.weight") == "position_embd.weight")
    }

    @Test func gemmaNormShiftRoundsLikeTorchForF16() {
        let x: Float = 0.0009765625 + 0.00048828125  // 2^-10 + 2^-11: 1 + x is not an f16
        #expect(apply(.shift([1], by: 1), [x]) == [1 + x])
        #expect(apply(.shift([1], by: 1, roundToF16: true), [x]) == [Float(Float16(1 + x))])
        #expect(apply(.shift([1], by: -1), apply(.shift([1], by: 1), [0.25])) == [0.25])
    }

    @Test func llamaPermutationIsUndoneByItsInverse() throws {
        let shape = [8, 2]
        let values = (0..<16).map(Float.init)
        let f = try HFLlama.permutation(name: "blk.0.attn_q.weight", shape: shape, heads: 2, file: "x", inverse: false)
        let b = try HFLlama.permutation(name: "blk.0.attn_q.weight", shape: shape, heads: 2, file: "x", inverse: true)
        #expect(apply(f, values) != values)
        #expect(apply(b, apply(f, values)) == values)
        #expect(throws: ScalpelError.self) { try HFLlama.permutation(name: "k", shape: [6, 2], heads: 2, file: "x", inverse: false) }
    }

    @Test func phi3KeepsFusedProjections() {
        #expect(HFPhi3.phi3.ggufName("model.layers.1.self_attn.qkv_proj.weight") == "blk.1.attn_qkv.weight")
        #expect(HFPhi3.phi3.ggufName("model.layers.1.mlp.gate_up_proj.weight") == "blk.1.ffn_up.weight")
        #expect(HFPhi3.phi3.ggufName("model.layers.1.self_attn.q_proj.weight") == nil)
        #expect(HFGemma.gemma2.ggufName("model.layers.0.post_feedforward_layernorm.weight") == "blk.0.post_ffw_norm.weight")
        #expect(HFGemma.gemma2.drop("lm_head.weight"))
    }
}

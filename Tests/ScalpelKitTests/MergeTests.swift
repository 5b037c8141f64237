import Foundation
import Testing
@testable import ScalpelKit

/// Scalpel's merge against PEFT's own `merge_and_unload` (fixtures/peft), and the merge contract.
@Suite struct MergeTests {
    /// Merges `adapters` into `base` and returns every output tensor as f32.
    static func merge(_ base: String, _ adapters: [(String, Double)], to out: String, options: Merge.Options = Merge.Options()) throws -> (values: [String: [Float]], summary: Merge.Summary) {
        let ckpt = try CheckpointReader.open(base)
        let inputs = try adapters.map { WeightedAdapter(try LoRAAdapter.open($0.0), weight: $0.1) }
        let dest = try Destination(path: out)
        let summary = try Merge.plan(base: ckpt, adapters: inputs, for: dest, options: options).written(as: Merge.Summary.self)
        return (try PEFTFixture.floats(out), summary)
    }

    static func expectClose(_ got: [String: [Float]], _ want: [String: [Float]], tolerance: Double = 1e-6) {
        #expect(Set(got.keys) == Set(want.keys))
        for (name, w) in want {
            guard let g = got[name] else { continue }
            let err = PEFTFixture.relativeError(g, w)
            #expect(err <= tolerance, "\(name): relative error \(err)")
        }
    }

    @Test(arguments: [("llama_base", "patterns"), ("llama_base", "rslora"), ("llama_base", "dora"),
                      ("gpt2_base", "gpt2_fifo"), ("llama_base", "plain_a"), ("llama_base", "plain_b")])
    func equalsPEFTMergeAndUnload(base: String, adapter: String) throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let (got, summary) = try Self.merge(PEFTFixture.root + "/" + base, [(PEFTFixture.adapter(adapter), 1)], to: dir.file("m.safetensors"))
        Self.expectClose(got, try PEFTFixture.floats(PEFTFixture.merged(adapter)))
        let modules = try LoRAAdapter.open(PEFTFixture.adapter(adapter)).modules
        #expect(summary.products == modules.count)
    }

    @Test func summaryCountsEveryKindOfChange() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let base = PEFTFixture.llamaBase
        let s1 = try Self.merge(base, [(PEFTFixture.adapter("patterns"), 1)], to: dir.file("p.safetensors")).summary
        // 14 linear + 1 embedding; lm_head and the saved embedding table replaced (the table then also
        // gets its LoRA product, so 16 tensors change).
        #expect(s1.products == 15 && s1.replaced == 2 && s1.changed == 16 && s1.biases == 0 && s1.tensors == 35)
        let s2 = try Self.merge(base, [(PEFTFixture.adapter("rslora"), 1)], to: dir.file("r.safetensors")).summary
        #expect(s2.products == 14 && s2.biases == 14 && s2.changed == 28)
        let s3 = try Self.merge(base, [(PEFTFixture.adapter("dora"), 1)], to: dir.file("d.safetensors")).summary
        #expect(s3.dora == 15)
    }

    @Test func sequentialAdaptersEqualPEFTMergingOneAfterTheOther() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let got = try Self.merge(PEFTFixture.llamaBase, [(PEFTFixture.adapter("plain_a"), 1), (PEFTFixture.adapter("plain_b"), 1)],
                                 to: dir.file("ab.safetensors")).values
        Self.expectClose(got, try PEFTFixture.floats(PEFTFixture.merged("plain_a_then_b")))
    }

    @Test func aNegativeWeightUnmerges() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let merged = PEFTFixture.merged("rslora")
        let back = try Self.merge(merged, [(PEFTFixture.adapter("rslora"), -1)], to: dir.file("u.safetensors")).values
        let base = try PEFTFixture.floats(PEFTFixture.llamaBase + "/model.safetensors")
        let mergedValues = try PEFTFixture.floats(merged)
        #expect(Set(back.keys) == Set(base.keys))
        for (name, b) in base {
            // Subtracting rounds at the scale of the merged values, which the update dominates here.
            let scale = mergedValues[name]!.map { abs(Double($0)) }.max()!
            let diff = zip(back[name]!, b).map { abs(Double($0) - Double($1)) }.max()!
            #expect(diff <= 1e-6 * scale, "\(name): \(diff) vs scale \(scale)")
        }
    }

    @Test func weightsScaleTheUpdate() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let base = try PEFTFixture.floats(PEFTFixture.llamaBase)
        let full = try PEFTFixture.floats(PEFTFixture.merged("plain_a"))
        let half = try Self.merge(PEFTFixture.llamaBase, [(PEFTFixture.adapter("plain_a"), 0.5)], to: dir.file("h.safetensors")).values
        for (name, b) in base {
            let want = zip(b, full[name]!).map { $0 + 0.5 * ($1 - $0) }
            #expect(PEFTFixture.relativeError(half[name]!, want) <= 1e-6, "\(name)")
        }
    }

    @Test func writesTheRequestedDtypeRoundingTheF32ResultOnce() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let f32 = try Self.merge(PEFTFixture.llamaBase, [(PEFTFixture.adapter("patterns"), 1)], to: dir.file("f32.safetensors")).values
        _ = try Self.merge(PEFTFixture.llamaBase, [(PEFTFixture.adapter("patterns"), 1)], to: dir.file("bf16.safetensors"),
                           options: .init(dtype: .bf16))
        let out = try CheckpointReader.open(dir.file("bf16.safetensors"))
        for t in out.tensors {
            #expect(t.type == .plain(.bf16))
            var want = [UInt8](repeating: 0, count: t.byteCount)
            try f32[t.name]!.withUnsafeBufferPointer { src in
                try want.withUnsafeMutableBytes { try FloatConversion.encode(src, as: .bf16, into: $0) }
            }
            #expect(Array(try out.view(t.name).bytes) == want, "\(t.name)")
        }
    }

    @Test func aFolderOutputOfAFolderBaseCopiesItsOtherFiles() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let out = dir.file("merged")
        let got = try Self.merge(PEFTFixture.llamaBase, [(PEFTFixture.adapter("plain_a"), 1)], to: out).values
        #expect(dir.entries() == ["merged"])
        let files = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        #expect(files == ["config.json", "model.safetensors"])
        #expect(FileManager.default.contentsEqual(atPath: out + "/config.json", andPath: PEFTFixture.llamaBase + "/config.json"))
        Self.expectClose(got, try PEFTFixture.floats(PEFTFixture.merged("plain_a")))
    }

    @Test func keysMatchingNoBaseTensorAreAnErrorUnlessIgnored() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let adapter = PEFTFixture.adapter("gpt2_fifo")
        #expect(throws: ScalpelError.invalid(file: adapter, tensor: "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight",
                                             reason: "targets transformer.h.0.attn.c_attn.weight, which is not in the base; 7 more: base_model.model.transformer.h.0.attn.c_proj.lora_A.weight, base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight, base_model.model.transformer.h.0.mlp.c_proj.lora_A.weight, base_model.model.transformer.h.1.attn.c_attn.lora_A.weight, base_model.model.transformer.h.1.attn.c_proj.lora_A.weight, base_model.model.transformer.h.1.mlp.c_fc.lora_A.weight, base_model.model.transformer.h.1.mlp.c_proj.lora_A.weight (--ignore-missing skips them)")) {
            _ = try Self.merge(PEFTFixture.llamaBase, [(adapter, 1)], to: dir.file("x.safetensors"))
        }
        #expect(dir.entries().isEmpty)
        // Skipping every key would write an unchanged copy: that is an error too, not a silent success.
        #expect(throws: ScalpelError.invalid(file: adapter, tensor: nil, reason: "no adapter tensor matches a tensor of \(PEFTFixture.llamaBase): nothing would be merged (--ignore-missing skipped 8)")) {
            _ = try Self.merge(PEFTFixture.llamaBase, [(adapter, 1)], to: dir.file("x.safetensors"), options: .init(ignoreMissing: true))
        }
        #expect(dir.entries().isEmpty)
    }

    @Test func shapesThatDisagreeAreAnError() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        // The same module names on a base whose q_proj is narrower.
        var tensors: [OutputTensor] = []
        let base = try CheckpointReader.open(PEFTFixture.llamaBase)
        for t in base.tensors {
            if t.name == "model.layers.0.self_attn.q_proj.weight" {
                tensors.append(f32Tensor(t.name, [16, 32], [Float](repeating: 0, count: 512)))
            } else {
                tensors.append(OutputTensor(copying: try base.view(t.name)))
            }
        }
        try SafetensorsWriter.write(tensors, metadata: Metadata(), to: dir.file("narrow.safetensors"))
        let adapter = PEFTFixture.adapter("plain_a")
        #expect(throws: ScalpelError.invalid(file: adapter, tensor: "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
                                             reason: "targets model.layers.0.self_attn.q_proj.weight of shape [16, 32], but the update has shape [32, 32] (--ignore-missing skips them)")) {
            _ = try Self.merge(dir.file("narrow.safetensors"), [(adapter, 1)], to: dir.file("x.safetensors"))
        }
    }

    @Test func namesLineUpWhenTheBaseLacksTheLeadingModelComponent() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let base = try CheckpointReader.open(PEFTFixture.llamaBase)
        let renamed = try base.tensors.map { t in
            OutputTensor(copying: try base.view(t.name), name: t.name.hasPrefix("model.") ? String(t.name.dropFirst(6)) : t.name)
        }
        try SafetensorsWriter.write(renamed, metadata: Metadata(), to: dir.file("bare.safetensors"))
        let (got, summary) = try Self.merge(dir.file("bare.safetensors"), [(PEFTFixture.adapter("rslora"), 1)], to: dir.file("m.safetensors"))
        #expect(summary.notes == ["\(PEFTFixture.adapter("rslora")): names matched after dropping the leading \"model.\""])
        var want: [String: [Float]] = [:]
        for (k, v) in try PEFTFixture.floats(PEFTFixture.merged("rslora")) { want[k.hasPrefix("model.") ? String(k.dropFirst(6)) : k] = v }
        Self.expectClose(got, want)
    }

    @Test func doraMergesOnlyWithWeightOne() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        #expect(throws: ScalpelError.self) {
            _ = try Self.merge(PEFTFixture.llamaBase, [(PEFTFixture.adapter("dora"), 0.5)], to: dir.file("x.safetensors"))
        }
    }

    @Test func aReplacementCannotBeUndoneByANegativeWeight() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        #expect(throws: ScalpelError.self) {
            _ = try Self.merge(PEFTFixture.llamaBase, [(PEFTFixture.adapter("patterns"), -1)], to: dir.file("x.safetensors"))
        }
        #expect(dir.entries().isEmpty)
    }

    /// The plain_a adapter as a llama.cpp GGUF LoRA: `<base tensor>.lora_a` / `.lora_b`, alpha 8.
    static func writeGGUFLoRA(_ adapterFolder: String, to path: String, alpha: Float) throws {
        let peft = try LoRAAdapter.open(adapterFolder)
        var tensors: [OutputTensor] = []
        for m in peft.modules {
            tensors.append(OutputTensor(copying: try peft.checkpoint.view(m.aName), name: m.weightName + ".lora_a"))
            tensors.append(OutputTensor(copying: try peft.checkpoint.view(m.bName), name: m.weightName + ".lora_b"))
        }
        let metadata = Metadata([("general.architecture", .string("llama")), ("general.type", .string("adapter")),
                                 ("adapter.type", .string("lora")), ("adapter.lora.alpha", .float32(alpha))])
        try GGUFWriter.write(tensors, metadata: metadata, to: path)
    }

    @Test func aGGUFLoRAIntoAGGUFBaseEqualsTheSafetensorsMerge() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let base = try CheckpointReader.open(PEFTFixture.llamaBase)
        let ggufBase = dir.file("base.gguf")
        try Convert.plan(base, for: try Destination(path: ggufBase), options: .init(architecture: "llama")).write()
        try Self.writeGGUFLoRA(PEFTFixture.adapter("plain_a"), to: dir.file("lora.gguf"), alpha: 8)

        let (got, summary) = try Self.merge(ggufBase, [(dir.file("lora.gguf"), 0.75)], to: dir.file("merged.gguf"))
        #expect(summary.products == 6)
        let merged = try CheckpointReader.open(dir.file("merged.gguf"))
        #expect(merged.format == .gguf && merged.metadata["general.architecture"]?.stringValue == "llama")
        let want = try Self.merge(PEFTFixture.llamaBase, [(PEFTFixture.adapter("plain_a"), 0.75)], to: dir.file("merged.safetensors")).values
        Self.expectClose(got, want, tolerance: 0)
    }

    /// The llama base as GGUF with the attention projections of layer 0 in `type`.
    static func quantizedGGUFBase(_ type: GGMLType, to path: String) throws -> [String] {
        let base = try CheckpointReader.open(PEFTFixture.llamaBase)
        var quantized: [String] = []
        let tensors = try base.tensors.map { t -> OutputTensor in
            let view = try base.view(t.name)
            guard t.name.hasPrefix("model.layers.0.self_attn."), t.name.hasSuffix("proj.weight") else { return OutputTensor(copying: view) }
            quantized.append(t.name)
            return OutputTensor(name: t.name, type: .block(type), shape: t.shape, content: .filling { out in
                try FloatConversion.floats(view).withUnsafeBufferPointer { try GGMLQuantize.quantize(type, $0, into: out) }
            })
        }
        try GGUFWriter.write(tensors, metadata: Metadata([("general.architecture", .string("llama"))]), to: path)
        return quantized
    }

    @Test(arguments: [GGMLType.q8_0, .q4_0, .q5_1])
    func aQuantizedGGUFBaseIsRequantizedToItsType(type: GGMLType) throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let quantized = try Self.quantizedGGUFBase(type, to: dir.file("q.gguf"))
        try Self.writeGGUFLoRA(PEFTFixture.adapter("plain_a"), to: dir.file("lora.gguf"), alpha: 8)
        let base = try CheckpointReader.open(dir.file("q.gguf"))
        let inputs = [WeightedAdapter(try LoRAAdapter.open(dir.file("lora.gguf")))]
        let dest = try Destination(path: dir.file("m.gguf"))
        let summary = try Merge.plan(base: base, adapters: inputs, for: dest).written(as: Merge.Summary.self)
        #expect(summary.requantized == 2 && summary.changed == 6)  // q_proj and v_proj of layer 0
        #expect(Set(summary.requantizations.map(\.tensor)) == ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.v_proj.weight"])

        // The same merge written unquantized, then quantized with ggml's reference quantizer.
        let f32Dest = try Destination(path: dir.file("f32.gguf"))
        try Merge.plan(base: base, adapters: inputs, for: f32Dest, options: .init(dtype: .f32)).write()
        let merged = try CheckpointReader.open(dir.file("m.gguf")), unquantized = try CheckpointReader.open(dir.file("f32.gguf"))
        for name in quantized {
            let values = try FloatConversion.floats(try unquantized.view(name))
            let got = try merged.view(name)
            #expect(got.info.type == .block(type))
            var want = [UInt8](repeating: 0, count: got.bytes.count)
            try values.withUnsafeBufferPointer { v in try want.withUnsafeMutableBytes { try GGMLQuantize.quantize(type, v, into: $0) } }
            #expect(Array(got.bytes) == want, "\(name)")
        }
        for e in summary.requantizations {
            #expect(e.type == type.name && e.error.relativeRMSE > 0 && e.error.relativeRMSE < (type == .q8_0 ? 0.01 : 0.2))
        }
    }

    @Test func quantizedLayoutsThatCannotBeRewrittenAreExplicitErrors() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        try Self.writeGGUFLoRA(PEFTFixture.adapter("plain_a"), to: dir.file("lora.gguf"), alpha: 8)
        // A K-quant (dequantized, but not re-quantized) targeted tensor.
        let k4 = GGMLType(name: "Q4_K")!
        try GGUFWriter.write([OutputTensor(name: "w.weight", type: .block(k4), shape: [2, 256], content: .filling { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) })],
                             metadata: Metadata([("general.architecture", .string("llama"))]), to: dir.file("k.gguf"))
        try GGUFWriter.write([f32Tensor("w.weight.lora_a", [1, 256], [Float](repeating: 1, count: 256)), f32Tensor("w.weight.lora_b", [2, 1], [1, 2])],
                             metadata: Metadata([("general.architecture", .string("llama")), ("general.type", .string("adapter")),
                                                 ("adapter.type", .string("lora")), ("adapter.lora.alpha", .float32(1))]),
                             to: dir.file("k-lora.gguf"))
        #expect(throws: ScalpelError.invalid(file: dir.file("k.gguf"), tensor: "w.weight", reason: "is Q4_K-quantized: merging into it needs re-quantization to Q4_K, which Scalpel cannot do (it re-quantizes Q8_0, Q4_0, Q4_1, Q5_0, Q5_1); pass --dtype f16 to write the merged tensors unquantized")) {
            _ = try Self.merge(dir.file("k.gguf"), [(dir.file("k-lora.gguf"), 1)], to: dir.file("m.gguf"))
        }
        // With a dtype, the K-quant is dequantized and merged: all-zero blocks decode to 0, plus B @ A.
        let unquantized = try Self.merge(dir.file("k.gguf"), [(dir.file("k-lora.gguf"), 1)], to: dir.file("m16.gguf"), options: .init(dtype: .f32)).values
        #expect(unquantized["w.weight"] == [Float](repeating: 1, count: 256) + [Float](repeating: 2, count: 256))

        let base = try CheckpointReader.open(PEFTFixture.llamaBase)
        // A bitsandbytes NF4 base made by `quantize`.
        let nf4 = dir.file("nf4.safetensors")
        try Quantize.plan(base, for: try Destination(path: nf4), options: .init(type: .nf4)).write()
        #expect(throws: ScalpelError.invalid(file: nf4, tensor: "model.layers.0.mlp.up_proj.weight", reason: "is stored as NF4 (bitsandbytes or compressed-tensors): Scalpel merges into these layouts only through plain weights (scalpel dequantize, merge, then quantize again)")) {
            _ = try Self.merge(nf4, [(PEFTFixture.adapter("plain_a"), 1)], to: dir.file("m.safetensors"))
        }
    }

    /// Tensors large enough to be split into several row chunks (64K elements each): a linear LoRA, an
    /// embedding LoRA (transposed) and a DoRA adapter, against a plain f64 reference.
    @Test func chunkedMergeEqualsAPlainReference() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        var seed: UInt64 = 1
        func values(_ n: Int, _ scale: Float) -> [Float] {
            (0..<n).map { _ in
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                return (Float(seed >> 40) / Float(1 << 24) - 0.5) * scale
            }
        }
        let (out, inF, vocab, dim, r) = (300, 500, 700, 120, 3)
        let w = values(out * inF, 0.1), e = values(vocab * dim, 0.1)
        try SafetensorsWriter.write([f32Tensor("m.layer.weight", [out, inF], w), f32Tensor("m.emb.weight", [vocab, dim], e)],
                                    metadata: Metadata(), to: dir.file("base.safetensors"))
        let la = values(r * inF, 1), lb = values(out * r, 1), ea = values(r * vocab, 1), eb = values(dim * r, 1)
        let plain = try AdapterConfig(r: r, loraAlpha: 6, targetModules: ["layer", "emb"])
        try PEFTAdapterWriter.write(tensors: [
            f32Tensor(PEFTAdapterWriter.aKey("m.layer"), [r, inF], la), f32Tensor(PEFTAdapterWriter.bKey("m.layer"), [out, r], lb),
            f32Tensor(PEFTAdapterWriter.aKey("m.emb", kind: .embedding), [r, vocab], ea),
            f32Tensor(PEFTAdapterWriter.bKey("m.emb", kind: .embedding), [dim, r], eb),
        ], config: plain, to: dir.file("plain"))
        let magnitude = values(out, 1).map { abs($0) + 1 }, da = values(r * inF, 1), db = values(out * r, 1)
        let dora = try AdapterConfig(r: r, loraAlpha: 3, targetModules: ["layer"], useDoRA: true)
        try PEFTAdapterWriter.write(tensors: [
            f32Tensor(PEFTAdapterWriter.aKey("m.layer"), [r, inF], da), f32Tensor(PEFTAdapterWriter.bKey("m.layer"), [out, r], db),
            f32Tensor(LoRAAdapter.peftPrefix + "m.layer.lora_magnitude_vector", [out], magnitude),
        ], config: dora, to: dir.file("dora"))

        let got = try Self.merge(dir.file("base.safetensors"), [(dir.file("plain"), 0.5), (dir.file("dora"), 1)], to: dir.file("m.safetensors")).values
        // Reference: plain (scaling 2, weight 0.5), then DoRA (scaling 1) with row norms.
        var ref = w.map(Double.init)
        for i in 0..<out {
            for j in 0..<inF {
                var s1 = 0.0, s2 = 0.0
                for k in 0..<r {
                    s1 += Double(lb[i * r + k]) * Double(la[k * inF + j])
                    s2 += Double(db[i * r + k]) * Double(da[k * inF + j])
                }
                ref[i * inF + j] += 0.5 * 2 * s1 + s2
            }
            let norm = (0..<inF).reduce(0.0) { $0 + ref[i * inF + $1] * ref[i * inF + $1] }.squareRoot()
            for j in 0..<inF { ref[i * inF + j] *= Double(magnitude[i]) / norm }
        }
        #expect(PEFTFixture.relativeError(got["m.layer.weight"]!, ref.map(Float.init)) <= 1e-6)
        var eref = e.map(Double.init)
        for v in 0..<vocab {
            for d in 0..<dim {
                var s = 0.0
                for k in 0..<r { s += Double(eb[d * r + k]) * Double(ea[k * vocab + v]) }
                eref[v * dim + d] += 0.5 * 2 * s
            }
        }
        #expect(PEFTFixture.relativeError(got["m.emb.weight"]!, eref.map(Float.init)) <= 1e-6)
    }
}

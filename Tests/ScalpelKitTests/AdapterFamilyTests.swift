import Foundation
import Testing
@testable import ScalpelKit

/// Adapter families: each rule's exact factors against the family's formula computed plainly, merges
/// against PEFT's merge_and_unload (fixtures/adapters), kohya's rank rules, llama.cpp's q/k row order.
@Suite struct AdapterFamilyTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/adapters").path

    static func floats(_ ckpt: Checkpoint, _ name: String) throws -> [Float] { try FloatConversion.floats(try ckpt.view(name)) }

    /// `a @ b` in Double, row-major.
    static func product(_ a: [Float], _ b: [Float], _ m: Int, _ k: Int, _ n: Int) -> [Double] {
        var out = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { for p in 0..<k { out[i * n + j] += Double(a[i * k + p]) * Double(b[p * n + j]) } } }
        return out
    }

    static func relative(_ got: [Double], _ want: [Double]) -> Double {
        let d = zip(got, want).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        let w = want.reduce(0.0) { $0 + $1 * $1 }
        return (d / max(w, 1e-300)).squareRoot()
    }

    static func delta(_ f: LoRAFactors) -> [Double] {
        product(f.b.values, f.a.values, f.b.rows, f.rank, f.a.cols)
    }

    @Test func lohaFactorsAreTheScaledHadamardProduct() throws {
        let ckpt = try CheckpointReader.open(Self.root + "/adapters/loha")
        let config = try AdapterConfig(json: ckpt.adapterConfig!, file: "loha")
        let reader = try AdapterFamilyReader(ckpt, config: config)
        #expect(reader.family == .loha && reader.modules.count == 14)
        for m in reader.modules {
            guard case .hadamard(let w1a, let w1b, let w2a, let w2b) = m.rule else { Issue.record("not LoHa"); continue }
            let (rows, cols, r) = (m.productShape[0], m.productShape[1], m.rank)
            let p1 = Self.product(try Self.floats(ckpt, w1a), try Self.floats(ckpt, w1b), rows, r, cols)
            let p2 = Self.product(try Self.floats(ckpt, w2a), try Self.floats(ckpt, w2b), rows, r, cols)
            let want = zip(p1, p2).map { $0 * $1 * m.scale }
            let f = try m.factors(ckpt)
            #expect(f.rank == min(r * r, rows) || f.rank == r * r)
            #expect(Self.relative(Self.delta(f), want) < 1e-6, "\(m.path)")
        }
        #expect(reader.modules.first { $0.path.hasSuffix("layers.0.mlp.up_proj") }!.scale == 5.0 / 4)
        #expect(reader.modules.first { $0.path.hasSuffix("o_proj") }!.rank == 2)
    }

    @Test func lokrFactorsAreTheScaledKroneckerProduct() throws {
        for name in ["lokr", "lokr_full"] {
            let ckpt = try CheckpointReader.open(Self.root + "/adapters/" + name)
            let reader = try AdapterFamilyReader(ckpt, config: try AdapterConfig(json: ckpt.adapterConfig!, file: name))
            for m in reader.modules {
                guard case .kronecker(let w1, let w2) = m.rule else { Issue.record("not LoKr"); continue }
                func full(_ f: AdapterDeltaModule.KronFactor) throws -> ([Float], Int, Int) {
                    switch f {
                    case .full(let n):
                        let s = ckpt.info(named: n)!.shape
                        return (try Self.floats(ckpt, n), s[0], s[1])
                    case .product(let a, let b):
                        let sa = ckpt.info(named: a)!.shape, sb = ckpt.info(named: b)!.shape
                        return (Self.product(try Self.floats(ckpt, a), try Self.floats(ckpt, b), sa[0], sa[1], sb[1]).map(Float.init), sa[0], sb[1])
                    }
                }
                let (x, xr, xc) = try full(w1), (y, yr, yc) = try full(w2)
                var want = [Double](repeating: 0, count: xr * yr * xc * yc)
                for i in 0..<xr { for j in 0..<xc { for p in 0..<yr { for q in 0..<yc {
                    want[(i * yr + p) * (xc * yc) + j * yc + q] = Double(x[i * xc + j]) * Double(y[p * yc + q]) * m.scale
                } } } }
                #expect(Self.relative(Self.delta(try m.factors(ckpt)), want) < 1e-6, "\(name) \(m.path)")
            }
        }
    }

    @Test func adaloraDividesByInitRNotTheKeptRank() throws {
        let ckpt = try CheckpointReader.open(Self.root + "/adapters/adalora")
        let reader = try AdapterFamilyReader(ckpt, config: try AdapterConfig(json: ckpt.adapterConfig!, file: "adalora"))
        let q = reader.modules.first { $0.path == "model.layers.0.self_attn.q_proj" }!
        #expect(q.rank == 4)
        #expect(abs(q.scale - 16.0 / 6.00001) < 1e-6)
    }

    @Test func everyFamilyMergesAsPEFTDoes() throws {
        let base = try CheckpointReader.open(Self.root + "/base/model.safetensors")
        for name in ["adalora", "ia3", "loha", "lokr", "lokr_full"] {
            let dir = TempDir()
            defer { dir.cleanup() }
            let dest = try Destination(path: dir.file("m.safetensors"))
            let summary = try Merge.plan(base: base, adapters: [WeightedAdapter(try LoRAAdapter.open(Self.root + "/adapters/" + name))], for: dest)
                .written(as: Merge.Summary.self)
            let got = try PEFTFixture.floats(dir.file("m.safetensors"))
            let want = try PEFTFixture.floats(Self.root + "/merged/" + name + "/model.safetensors")
            for (k, w) in want {
                #expect(Self.relative(got[k]!.map(Double.init), w.map(Double.init)) <= 1e-6, "\(name) \(k)")
            }
            if name == "ia3" { #expect(summary.scaled == 8 + 4) }  // 8 weights, 4 attention biases
        }
    }

    /// IA3 resolved against its base is a LoRA adapter (full rank, lora_B biases for row-scaled modules with
    /// a base bias) whose merge is PEFT's merge of the IA3 adapter; without the base it is an error.
    @Test func ia3ResolvedAgainstItsBaseMergesAsPEFTDoes() throws {
        let cases = [("ia3", Self.root + "/base/model.safetensors"),
                     ("ia3_gpt2", Self.root + "/../peft/gpt2_base/model.safetensors")]
        for (name, basePath) in cases {
            let base = try CheckpointReader.open(basePath)
            let ia3 = try LoRAAdapter.open(Self.root + "/adapters/" + name)
            #expect(ia3.needsBase && ia3.modules.isEmpty)
            #expect(throws: ScalpelError.self) { try ia3.resolvingScaledModules(base: nil) }
            let lora = try ia3.resolvingScaledModules(base: base)
            #expect(!lora.needsBase && lora.modules.count == ia3.scaledModules.count)
            for m in lora.modules {
                #expect(m.rank == min(m.productShape[0], m.productShape[1]) && m.scaling == 1)
                let rowScaled = ia3.scaledModules.first { $0.path == m.path }.map { $0.productShape[1] == 0 } ?? false
                #expect((m.biasName != nil) == rowScaled, "\(name) \(m.path)")  // both bases have biases
            }
            let dir = TempDir()
            defer { dir.cleanup() }
            _ = try Merge.plan(base: base, adapters: [WeightedAdapter(lora)], for: try Destination(path: dir.file("m.safetensors")))
                .written(as: Merge.Summary.self)
            let got = try PEFTFixture.floats(dir.file("m.safetensors"))
            for (k, w) in try PEFTFixture.floats(Self.root + "/merged/" + name + "/model.safetensors") {
                #expect(Self.relative(got[k]!.map(Double.init), w.map(Double.init)) <= 1e-6, "\(name) \(k)")
            }
        }
    }

    @Test func promptLearningIsInspectedButNotMerged() throws {
        let ckpt = try CheckpointReader.open(Self.root + "/adapters/prefix_tuning")
        let s = try AdapterSummary(ckpt)!
        #expect(s.family == .prefixTuning && s.virtualTokens == 5 && s.parameters == 320)
        #expect(throws: ScalpelError.self) { try LoRAAdapter(ckpt) }
    }

    @Test func kohyaRulesMatchResizeLoraPy() {
        let s: [Float] = [8, 4, 2, 1, 0.5, 0.25, 0.1, 0.05]
        #expect(Resize.chooseRank(s, rows: 32, cols: 32, rule: .svRatio(10), maxRank: nil) == 5)
        #expect(Resize.chooseRank(s, rows: 32, cols: 32, rule: .svFro(0.9), maxRank: nil) == 2)
        #expect(Resize.chooseRank(s, rows: 32, cols: 32, rule: .svCumulative(0.9), maxRank: nil) == 4)
        #expect(Resize.chooseRank(s, rows: 32, cols: 32, rule: .svEpsilon(0.3), maxRank: nil) == 5)
        #expect(Resize.chooseRank(s, rows: 32, cols: 32, rule: .svRatio(10), maxRank: 3) == 3)
        #expect(Resize.chooseRank([0, 0], rows: 32, cols: 32, rule: .svFro(0.5), maxRank: nil) == 1)
        #expect(abs(Resize.relativeError(s, kept: 2) - (5.325 / 85.325).squareRoot()) < 1e-7)
    }

    @Test func llamaRowOrderRoundTrips() throws {
        let rows = 16, rank = 3
        let b = (0..<(rows * rank)).map(Float.init)
        let p = try GGUFLoRANames.permuteRows(b, rows: rows, rank: rank, heads: 2, inverse: false)
        // head 0 rows [0..8) as [2, 4] -> [4, 2]: new row 1 is old row 4
        #expect(Array(p[3..<6]) == Array(b[12..<15]))
        #expect(try GGUFLoRANames.permuteRows(p, rows: rows, rank: rank, heads: 2, inverse: true) == b)
        #expect(GGUFLoRANames.ggufName("model.layers.3.self_attn.o_proj") == "blk.3.attn_output")
        #expect(GGUFLoRANames.hfPath("blk.3.ffn_gate") == "model.layers.3.mlp.gate_proj")
    }
}

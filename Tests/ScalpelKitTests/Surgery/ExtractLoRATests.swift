import Foundation
import Testing
@testable import ScalpelKit

/// `ExtractLoRA` through the library, on small checkpoint pairs whose differences have known singular values
/// (`LinalgTestMatrix.withSpectrum`): accuracy against the optimal rank-k error, the rank rules, the adapter's
/// config and layout, statuses, alpha compensation, embeddings, thread-count independence.
@Suite struct ExtractLoRATests {
    /// s_j = scale * ratio^j, j < count.
    static func geometric(_ count: Int, scale: Float, ratio: Float) -> [Float] {
        (0..<count).map { scale * Float(pow(Double(ratio), Double($0))) }
    }

    /// One 2-D tensor of the pair: its base values and the spectrum of its difference (empty: unchanged).
    struct Pair2D {
        var name: String
        var rows: Int
        var cols: Int
        var spectrum: [Float]
    }

    static let layers: [Pair2D] = [
        Pair2D(name: "model.layers.0.self_attn.q_proj.weight", rows: 96, cols: 64, spectrum: geometric(64, scale: 0.5, ratio: 0.8)),
        Pair2D(name: "model.layers.0.mlp.down_proj.weight", rows: 64, cols: 160, spectrum: geometric(64, scale: 0.3, ratio: 0.9)),
        Pair2D(name: "model.layers.0.mlp.up_proj.weight", rows: 160, cols: 64,
               spectrum: (0..<64).map { 0.4 / Float(pow(Double($0 + 1), 1.5)) }),
        Pair2D(name: "model.layers.0.self_attn.k_proj.weight", rows: 32, cols: 64, spectrum: [1, 0.5, 0.25, 0.125]),
        Pair2D(name: "model.layers.0.self_attn.v_proj.weight", rows: 32, cols: 64, spectrum: []),
        Pair2D(name: "model.embed_tokens.weight", rows: 80, cols: 64, spectrum: [0.5, 0.4, 0.3, 0.2, 0.1]),
    ]

    /// Writes base.safetensors and tuned.safetensors into `dir`: the 2-D tensors above (base N(0, 0.02^2)),
    /// a changed norm and an unchanged one. `tunedOverride` replaces tuned tensors by name.
    static func writePair(in dir: TempDir, tunedOverride: [String: ([Int], [Float])] = [:]) throws -> (base: Checkpoint, tuned: Checkpoint) {
        var base: [OutputTensor] = [], tuned: [OutputTensor] = []
        for (k, p) in layers.enumerated() {
            let w = Matrix.standardNormal(rows: p.rows, cols: p.cols, seed: UInt64(100 + k)).values.map { 0.02 * $0 }
            var t = w
            if !p.spectrum.isEmpty {
                let d = try LinalgTestMatrix.withSpectrum(p.spectrum, rows: p.rows, cols: p.cols, seed: UInt64(200 + 2 * k))
                t = zip(w, d.values).map { $0 + $1 }
            }
            base.append(f32Tensor(p.name, [p.rows, p.cols], w))
            tuned.append(f32Tensor(p.name, [p.rows, p.cols], t))
        }
        let norm = (0..<64).map { 1 + 0.01 * Float($0 % 7) }
        base.append(f32Tensor("model.layers.0.input_layernorm.weight", [64], norm))
        tuned.append(f32Tensor("model.layers.0.input_layernorm.weight", [64], norm.map { $0 * 1.01 }))
        base.append(f32Tensor("model.norm.weight", [64], norm))
        tuned.append(f32Tensor("model.norm.weight", [64], norm))
        for (name, (shape, values)) in tunedOverride {
            tuned.removeAll { $0.name == name }
            tuned.append(f32Tensor(name, shape, values))
        }
        let meta = Metadata([("format", .string("pt"))])
        try SafetensorsWriter.write(base, metadata: meta, to: dir.file("base.safetensors"))
        try SafetensorsWriter.write(tuned, metadata: meta, to: dir.file("tuned.safetensors"))
        return (try CheckpointReader.open(dir.file("base.safetensors")), try CheckpointReader.open(dir.file("tuned.safetensors")))
    }

    /// dW = tuned - base of one tensor, as a matrix.
    static func delta(_ pair: (base: Checkpoint, tuned: Checkpoint), _ name: String) throws -> Matrix {
        let w = try FloatConversion.floats(pair.base.view(name))
        let t = try FloatConversion.floats(pair.tuned.view(name))
        let shape = try #require(pair.base.info(named: name)).shape
        return Matrix(rows: shape[0], cols: shape[1], values: zip(t, w).map { $0 - $1 })
    }

    /// scaling * B @ A of every module of a written adapter (transposed for embeddings), by base tensor name.
    static func adapterDeltas(_ path: String) throws -> [String: Matrix] {
        let adapter = try LoRAAdapter.open(path)
        var out: [String: Matrix] = [:]
        for m in adapter.modules {
            let a = try FloatConversion.floats(adapter.checkpoint.view(m.aName))
            let b = try FloatConversion.floats(adapter.checkpoint.view(m.bName))
            let am = Matrix(rows: m.rank, cols: a.count / m.rank, values: a)
            let bm = Matrix(rows: b.count / m.rank, cols: m.rank, values: b)
            var p = try Linalg.multiply(bm, am)
            p.values = p.values.map { $0 * Float(m.scaling) }
            out[m.weightName] = m.transposed ? p.transposed : p
        }
        return out
    }

    /// The smallest k whose first k values of `spectrum` keep `energy` of the total.
    static func rank(keeping energy: Double, of spectrum: [Float]) -> Int {
        let e = spectrum.map { Double($0) * Double($0) }
        let total = e.reduce(0, +)
        var kept = 0.0
        for (i, x) in e.enumerated() {
            kept += x
            if kept >= energy * total { return i + 1 }
        }
        return spectrum.count
    }

    static func spectrum(_ name: String) -> [Float] { layers.first { $0.name == name }!.spectrum }

    @Test(arguments: [4, 8, 16])
    func mergedBackTheAdapterIsWithinOnePercentOfTheOptimalError(rank: Int) throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let pair = try Self.writePair(in: dir)
        var options = ExtractLoRA.Options()
        options.rule = .fixed(rank)
        let result = try ExtractLoRA.run(base: pair.base, tuned: pair.tuned, options: options)
        try ExtractLoRA.write(result, to: dir.file("adapter"), format: .peft)
        let deltas = try Self.adapterDeltas(dir.file("adapter"))
        let decomposed = result.results.filter { $0.status == "decomposed" }
        #expect(Set(decomposed.map(\.name)) == Set(deltas.keys))
        #expect(decomposed.count == 4)  // q, down, up, k; v unchanged; the embedding is not selected by default
        for r in decomposed {
            let spectrum = Self.spectrum(r.name)
            let k = min(rank, spectrum.count)
            #expect(r.rank == rank)
            let got = LinalgTestMatrix.relativeDifference(try Self.delta(pair, r.name), try #require(deltas[r.name]))
            let optimal = k < spectrum.count ? LinalgTestMatrix.optimalError(spectrum, rank: k) : 0
            #expect(got <= 1.01 * optimal + 1e-6, "\(r.name) rank \(rank): error \(got), optimal \(optimal)")
            // The reported error is the same quantity (to the precision of a difference of squares).
            #expect(abs(r.relativeError - got) <= max(1e-3 * got, 1e-3), "\(r.name): reported \(r.relativeError), actual \(got)")
        }
    }

    @Test func rankRulesPickTheRanksTheSpectraCallFor() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let pair = try Self.writePair(in: dir)
        let rules: [(RankRule, Double, Int)] = [
            (.energy(0.9), 0.9, .max), (.maxError(0.1), 0.99, .max), (.energy(0.95), 0.95, 6),
        ]
        for (n, (rule, energy, cap)) in rules.enumerated() {
            var options = ExtractLoRA.Options()
            options.rule = rule
            options.maxRank = cap
            let result = try ExtractLoRA.run(base: pair.base, tuned: pair.tuned, options: options)
            let ranks = Dictionary(uniqueKeysWithValues: result.results.filter { $0.status == "decomposed" }.map { ($0.name, $0.rank) })
            for (name, got) in ranks {
                let want = min(Self.rank(keeping: energy, of: Self.spectrum(name)), cap)
                #expect(got == want, "\(rule) cap \(cap): \(name) rank \(got), want \(want)")
            }
            // r = largest rank, alpha = r; every other rank (and alpha = rank) in the patterns, as PEFT reads them.
            let config = try #require(result.config)
            let r = try #require(ranks.values.max())
            #expect(config.r == r && config.loraAlpha == Double(r))
            #expect(config.rankPattern.count == ranks.values.filter { $0 != r }.count)
            for (name, k) in ranks {
                let path = PEFTAdapterWriter.modulePath(ofBaseTensor: name)
                #expect(config.rank(for: path) == k, "\(path)")
                #expect(config.scaling(for: path) == 1, "\(path)")
            }
            try ExtractLoRA.write(result, to: dir.file("a\(n)"), format: .peft)
            let modules = try LoRAAdapter.open(dir.file("a\(n)")).modules
            #expect(Dictionary(uniqueKeysWithValues: modules.map { ($0.weightName, $0.rank) }) == ranks)
        }
    }

    @Test func everyTensorGetsAStatusAndNothingChangedIsDropped() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let resized = (0..<(84 * 64)).map { Float($0 % 13) * 0.01 }
        let pair = try Self.writePair(in: dir, tunedOverride: ["model.embed_tokens.weight": ([84, 64], resized)])
        var options = ExtractLoRA.Options()
        options.rule = .fixed(4)
        options.selection.includeEmbeddings = true
        let result = try ExtractLoRA.run(base: pair.base, tuned: pair.tuned, options: options)
        let status = Dictionary(uniqueKeysWithValues: result.results.map { ($0.name, $0.status) })
        #expect(status["model.layers.0.self_attn.v_proj.weight"] == "unchanged")
        #expect(status["model.norm.weight"] == "unchanged")
        #expect(status["model.layers.0.input_layernorm.weight"] == "changed")
        #expect(status["model.embed_tokens.weight"] == "shape-mismatch")
        #expect(result.results.filter { $0.status == "decomposed" }.count == 4)
        let norm = try #require(result.results.first { $0.name == "model.layers.0.input_layernorm.weight" })
        #expect(abs(norm.relativeChange - 0.01) < 1e-6)  // tuned = 1.01 * base
        #expect(result.text.contains("base [80, 64] vs tuned [84, 64]"))
        #expect(result.text.contains("4 tensors decomposed, 2 unchanged"))
        // --save-full keeps the norm in full: then the whole difference but the rank-4 tails is kept.
        options.saveFull = true
        let saved = try ExtractLoRA.run(base: pair.base, tuned: pair.tuned, options: options)
        #expect(saved.results.first { $0.name == "model.layers.0.input_layernorm.weight" }?.status == "saved")
        #expect(saved.config?.modulesToSave == ["model.layers.0.input_layernorm"])
        #expect(saved.keptShare > result.keptShare)
    }

    @Test func alphaIsCompensatedInB() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let pair = try Self.writePair(in: dir)
        var options = ExtractLoRA.Options()
        options.rule = .energy(0.9)
        try ExtractLoRA.write(try ExtractLoRA.run(base: pair.base, tuned: pair.tuned, options: options), to: dir.file("plain"), format: .peft)
        options.alpha = 32
        let scaled = try ExtractLoRA.run(base: pair.base, tuned: pair.tuned, options: options)
        #expect(scaled.config?.loraAlpha == 32 && scaled.config?.alphaPattern.isEmpty == true)
        try ExtractLoRA.write(scaled, to: dir.file("scaled"), format: .peft)
        let plain = try Self.adapterDeltas(dir.file("plain")), alpha = try Self.adapterDeltas(dir.file("scaled"))
        #expect(Set(plain.keys) == Set(alpha.keys))
        for (name, d) in plain {
            #expect(LinalgTestMatrix.relativeDifference(d, try #require(alpha[name])) <= 1e-6, "\(name)")
        }
    }

    @Test func embeddingFactorsAreStoredTransposedAsPEFTDoes() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let pair = try Self.writePair(in: dir)
        var options = ExtractLoRA.Options()
        options.rule = .fixed(5)
        options.selection.includeEmbeddings = true
        try ExtractLoRA.write(try ExtractLoRA.run(base: pair.base, tuned: pair.tuned, options: options), to: dir.file("a"), format: .peft)
        let adapter = try LoRAAdapter.open(dir.file("a"))
        let m = try #require(adapter.modules.first { $0.path == "model.embed_tokens" })
        #expect(m.kind == .embedding && m.transposed)
        #expect(try #require(adapter.checkpoint.info(named: m.aName)).shape == [5, 80])  // lora_embedding_A [r, vocab]
        #expect(try #require(adapter.checkpoint.info(named: m.bName)).shape == [64, 5])  // lora_embedding_B [dim, r]
        #expect(m.aName.hasSuffix(".lora_embedding_A") && m.bName.hasSuffix(".lora_embedding_B"))
        let d = try #require(try Self.adapterDeltas(dir.file("a"))["model.embed_tokens.weight"])
        // Exactly rank 5: only f32 rounding is left.
        #expect(LinalgTestMatrix.relativeDifference(try Self.delta(pair, "model.embed_tokens.weight"), d) <= 1e-5)
    }

    @Test func theBytesDoNotDependOnTheThreadCount() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        // Large enough for the products to be split into blocks (more than 2^22 multiply-adds).
        let d = try LinalgTestMatrix.withSpectrum(Self.geometric(96, scale: 0.5, ratio: 0.95), rows: 640, cols: 384, seed: 9)
        let w = Matrix.standardNormal(rows: 640, cols: 384, seed: 10).values.map { 0.02 * $0 }
        let name = "model.layers.0.mlp.up_proj.weight"
        let meta = Metadata([("format", .string("pt"))])
        try SafetensorsWriter.write([f32Tensor(name, [640, 384], w)], metadata: meta, to: dir.file("b.safetensors"))
        try SafetensorsWriter.write([f32Tensor(name, [640, 384], zip(w, d.values).map { $0 + $1 })], metadata: meta, to: dir.file("t.safetensors"))
        var files: [Data] = []
        for (n, threads) in [1, 2, 3].enumerated() {
            var options = ExtractLoRA.Options()
            options.rule = .fixed(32)
            options.svd.seed = 11
            options.svd.threads = threads
            let result = try ExtractLoRA.run(base: try CheckpointReader.open(dir.file("b.safetensors")),
                                             tuned: try CheckpointReader.open(dir.file("t.safetensors")), options: options)
            try ExtractLoRA.write(result, to: dir.file("a\(n)"), format: .peft)
            files.append(try Data(contentsOf: URL(fileURLWithPath: dir.file("a\(n)/adapter_model.safetensors"))))
        }
        #expect(files[1] == files[0] && files[2] == files[0])
    }

    @Test func ggufOutputNeedsGGUFInputs() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let pair = try Self.writePair(in: dir)
        var options = ExtractLoRA.Options()
        options.format = .gguf
        #expect(throws: ScalpelError.self) { try ExtractLoRA.run(base: pair.base, tuned: pair.tuned, options: options) }
    }

    @Test func nothingToExtractIsAnError() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let pair = try Self.writePair(in: dir)
        #expect(throws: ScalpelError.self) { try ExtractLoRA.run(base: pair.base, tuned: pair.base, options: ExtractLoRA.Options()) }
    }

    @Test func aNaNInTunedIsAnErrorNotAnUnchangedTensor() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        var values = (0..<(96 * 64)).map { Float($0 % 11) * 0.001 }
        values[5] = .nan
        let pair = try Self.writePair(in: dir, tunedOverride: ["model.layers.0.self_attn.q_proj.weight": ([96, 64], values)])
        var options = ExtractLoRA.Options()
        options.rule = .fixed(4)
        do {
            let result = try ExtractLoRA.run(base: pair.base, tuned: pair.tuned, options: options)
            let status = result.results.first { $0.name == "model.layers.0.self_attn.q_proj.weight" }?.status ?? "?"
            Issue.record("no error; the tensor with a NaN got status \(status)")
        } catch let error as ScalpelError {
            #expect(error.description.contains("model.layers.0.self_attn.q_proj.weight"))
        }
    }
}

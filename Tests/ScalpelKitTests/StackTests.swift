import Foundation
import Testing
@testable import ScalpelKit

/// `stack`: cat/linear exactness, the sparsifying methods against a plain reference, DARE's mask, config.
@Suite struct StackTests {
    static let a = PEFTFixture.adapter("plain_a"), b = PEFTFixture.adapter("plain_b")

    static func inputs(_ list: [(String, Double)]) throws -> [WeightedAdapter] {
        try list.map { WeightedAdapter(try LoRAAdapter.open($0.0), weight: $0.1) }
    }

    /// Stacks into a folder in `dir` and returns the reopened adapter.
    static func stack(_ list: [(String, Double)], _ options: Stack.Options, in dir: TempDir, name: String = "out") throws -> LoRAAdapter {
        _ = try Stack.write(try inputs(list), options: options, to: dir.file(name))
        return try LoRAAdapter.open(dir.file(name))
    }

    /// `scaling * B @ A` of a module, computed plainly in f64 (row-major [rows, cols]).
    static func product(_ adapter: LoRAAdapter, _ m: LoRAModule, weight: Double = 1) throws -> [Double] {
        let a = try FloatConversion.floats(try adapter.checkpoint.view(m.aName))
        let b = try FloatConversion.floats(try adapter.checkpoint.view(m.bName))
        let (rows, cols) = (m.productShape[0], m.productShape[1])
        var out = [Double](repeating: 0, count: rows * cols)
        for i in 0..<rows {
            for j in 0..<cols {
                var s = 0.0
                for k in 0..<m.rank { s += Double(b[i * m.rank + k]) * Double(a[k * cols + j]) }
                out[i * cols + j] = weight * m.scaling * s
            }
        }
        return out
    }

    static func relative(_ got: [Double], _ want: [Double]) -> Double {
        let diff = zip(got, want).map { abs($0 - $1) }.max() ?? 0
        let scale = want.map(abs).max() ?? 0
        return scale == 0 ? diff : diff / scale
    }

    @Test func catThenMergeEqualsSequentialMerges() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        _ = try Self.stack([(Self.a, 0.7), (Self.b, -0.3)], .init(method: .cat), in: dir, name: "cat")
        let viaStack = try MergeTests.merge(PEFTFixture.llamaBase, [(dir.file("cat"), 1)], to: dir.file("s.safetensors")).values
        let sequential = try MergeTests.merge(PEFTFixture.llamaBase, [(Self.a, 0.7), (Self.b, -0.3)], to: dir.file("q.safetensors")).values
        MergeTests.expectClose(viaStack, sequential)
    }

    @Test func catConcatenatesRanksAndSetsScalingOne() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let out = try Self.stack([(Self.a, 0.7), (Self.b, -0.3)], .init(method: .cat), in: dir)
        let config = try #require(out.config)
        // plain_a: r 4 on q, v, up; plain_b: r 2 on v, o, down. Shared v_proj gets 6.
        var ranks: [String: Int] = [:]
        for m in out.modules {
            ranks[String(m.path.split(separator: ".").last!)] = m.rank
            #expect(m.scaling == 1 && config.rank(for: m.path) == m.rank && config.alpha(for: m.path) == Double(m.rank))
        }
        #expect(ranks == ["q_proj": 4, "v_proj": 6, "up_proj": 4, "o_proj": 2, "down_proj": 2])
        #expect(config.r == 4 && config.loraAlpha == 4 && !config.useRSLoRA)
        #expect(out.modules.count == 10)
    }

    @Test func linearIsTheExactWeightedSum() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let out = try Self.stack([(Self.a, 0.6), (Self.b, 0.4)], .init(method: .linear), in: dir)
        let pa = try LoRAAdapter.open(Self.a), pb = try LoRAAdapter.open(Self.b)
        for m in out.modules {
            var want = [Double](repeating: 0, count: m.productShape[0] * m.productShape[1])
            for (adapter, w) in [(pa, 0.6), (pb, 0.4)] {
                guard let im = adapter.modules.first(where: { $0.path == m.path }) else { continue }
                want = zip(want, try Self.product(adapter, im, weight: w)).map(+)
            }
            #expect(Self.relative(try Self.product(out, m), want) <= 1e-6, "\(m.path)")
        }
    }

    /// The combined dense update of a stacked module stored as exact factors (one side is an identity).
    static func dense(_ out: LoRAAdapter, _ m: LoRAModule) throws -> [Double] {
        #expect(m.rank == m.productShape.min()!)
        return try product(out, m)
    }

    /// The inputs' f32 updates tau_i of one module as Scalpel computes them (so that magnitude ties
    /// break identically), by adapter.
    static func taus(_ list: [(String, Double)], path: String) throws -> [(index: Int, tau: [Float])] {
        var out: [(Int, [Float])] = []
        for (i, input) in try inputs(list).enumerated() {
            guard let m = input.adapter.modules.first(where: { $0.path == path }) else { continue }
            out.append((i, try StackCombine.update(.init(adapter: input.adapter.checkpoint, adapterIndex: i, module: m, weight: input.weight))))
        }
        return out
    }

    /// Reference top-k: a stable sort by descending |value|, keep the first k.
    static func referencePrune(_ tau: [Float], density: Double) -> [Float] {
        let k = Int(density * Double(tau.count))
        let order = tau.indices.sorted { abs(tau[$0]) != abs(tau[$1]) ? abs(tau[$0]) > abs(tau[$1]) : $0 < $1 }
        var out = [Float](repeating: 0, count: tau.count)
        for i in order.prefix(k) { out[i] = tau[i] }
        return out
    }

    /// Reference TIES election and disjoint mean, written from methods.md.
    static func referenceDisjointMean(_ taus: [[Float]], sign: Stack.MajoritySign) -> [Double] {
        (0..<taus[0].count).map { e in
            let values = taus.map { Double($0[e]) }
            let s = sign == .total ? values.reduce(0, +) : values.map { $0 > 0 ? 1.0 : ($0 < 0 ? -1.0 : 0) }.reduce(0, +)
            let elected = s >= 0 ? 1.0 : -1.0
            let agreeing = values.filter { $0 * elected > 0 }
            return agreeing.isEmpty ? 0 : agreeing.reduce(0, +) / Double(agreeing.count)
        }
    }

    static let sparseInputs: [(String, Double)] = [(a, 1.0), (b, 0.5)]

    @Test(arguments: [Stack.MajoritySign.total, .frequency])
    func tiesEqualsTheReference(sign: Stack.MajoritySign) throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let out = try Self.stack(Self.sparseInputs, .init(method: .ties, density: 0.3, majoritySign: sign), in: dir)
        for m in out.modules {
            let pruned = try Self.taus(Self.sparseInputs, path: m.path).map { Self.referencePrune($0.tau, density: 0.3) }
            #expect(Self.relative(try Self.dense(out, m), Self.referenceDisjointMean(pruned, sign: sign)) <= 1e-6, "\(m.path)")
        }
    }

    @Test func magnitudePruneEqualsTheReference() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let out = try Self.stack(Self.sparseInputs, .init(method: .magnitudePrune, density: 0.25), in: dir)
        for m in out.modules {
            var want = [Double](repeating: 0, count: m.productShape[0] * m.productShape[1])
            for t in try Self.taus(Self.sparseInputs, path: m.path) {
                want = zip(want, Self.referencePrune(t.tau, density: 0.25)).map { $0 + Double($1) }
            }
            #expect(Self.relative(try Self.dense(out, m), want) <= 1e-6, "\(m.path)")
        }
    }

    @Test func dareKeepsAboutDensityAndRescalesTheKeptEntries() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = "model.layers.0.mlp.up_proj"  // only in plain_a: the output is its masked update
        let out = try Self.stack(Self.sparseInputs, .init(method: .dareLinear, density: 0.3, seed: 7), in: dir)
        let m = try #require(out.modules.first { $0.path == path })
        let got = try Self.dense(out, m)
        let tau = try Self.taus(Self.sparseInputs, path: path)[0].tau
        let mask = DAREMask(seed: 7, adapterIndex: 0, path: path, density: 0.3)
        var kept = 0
        for e in 0..<tau.count {
            if mask.keeps(e) {
                kept += 1
                #expect(abs(got[e] - Double(tau[e] / 0.3)) <= 1e-6 * abs(Double(tau[e] / 0.3)))
            } else {
                #expect(got[e] == 0)
            }
        }
        let fraction = Double(kept) / Double(tau.count)  // 2048 entries: sd of the fraction is about 0.01
        #expect(abs(fraction - 0.3) < 0.05, "kept \(fraction)")

        let again = try Self.stack(Self.sparseInputs, .init(method: .dareLinear, density: 0.3, seed: 7), in: dir, name: "again")
        #expect(try Self.dense(again, again.modules.first { $0.path == path }!) == got)
        let other = try Self.stack(Self.sparseInputs, .init(method: .dareLinear, density: 0.3, seed: 8), in: dir, name: "other")
        #expect(try Self.dense(other, other.modules.first { $0.path == path }!) != got)
    }

    @Test func dareTiesEqualsTheReferenceOnTheSameMasks() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let out = try Self.stack(Self.sparseInputs, .init(method: .dareTies, density: 0.5, majoritySign: .total, seed: 3), in: dir)
        for m in out.modules {
            let masked = try Self.taus(Self.sparseInputs, path: m.path).map { t in
                let mask = DAREMask(seed: 3, adapterIndex: t.index, path: m.path, density: 0.5)
                return t.tau.indices.map { mask.keeps($0) ? t.tau[$0] / 0.5 : 0 }
            }
            #expect(Self.relative(try Self.dense(out, m), Self.referenceDisjointMean(masked, sign: .total)) <= 1e-6, "\(m.path)")
        }
    }

    @Test func dareMaskIsAPureFunctionOfItsInputs() {
        // Pinned values: the mask must not change between versions (docs/merge.md gives the formula).
        #expect(DAREMask.mix(0) == 0)
        #expect(DAREMask.mix(1) == 0x5692_161D_100B_05E5)
        #expect(DAREMask.fnv1a64("") == 0xCBF2_9CE4_8422_2325)
        #expect(DAREMask.fnv1a64("a") == 0xAF63_DC4C_8601_EC8C)
        let mask = DAREMask(seed: 42, adapterIndex: 1, path: "model.layers.0.self_attn.q_proj", density: 0.5)
        let bits = (0..<4096).map { mask.keeps($0) }
        #expect(bits == (0..<4096).map { DAREMask(seed: 42, adapterIndex: 1, path: "model.layers.0.self_attn.q_proj", density: 0.5).keeps($0) })
        let kept = bits.filter { $0 }.count
        #expect(abs(kept - 2048) < 200)
    }

    @Test func keepLargestBreaksTiesByIndex() {
        var v: [Float] = [1, -3, 2, -2, 3, 0, 2]
        v.withUnsafeMutableBufferPointer { StackMasks.keepLargest($0, count: 4) }
        #expect(v == [0, -3, 2, -2, 3, 0, 0])
        var w: [Float] = [5, 1, 4]
        w.withUnsafeMutableBufferPointer { StackMasks.keepLargest($0, count: 0) }
        #expect(w == [0, 0, 0])
        var big = (0..<1000).map { Float(($0 * 7919) % 1000) - 500 }
        big.withUnsafeMutableBufferPointer { StackMasks.keepLargest($0, count: 100) }
        #expect(big.filter { $0 != 0 }.count == 100 && big.filter { $0 != 0 }.allSatisfy { abs($0) >= 450 })
    }

    @Test func carriesIdenticalReplacementsAndBiases() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let out = try Self.stack([(PEFTFixture.adapter("rslora"), 0.5), (Self.a, 1)], .init(method: .cat), in: dir)
        let config = try #require(out.config)
        #expect(config.loraBias)
        let q = try #require(out.modules.first { $0.path == "model.layers.0.self_attn.q_proj" })
        #expect(q.biasName != nil && q.rank == 12)
        let merged = try MergeTests.merge(PEFTFixture.llamaBase, [(dir.file("out"), 1)], to: dir.file("m.safetensors")).values
        let sequential = try MergeTests.merge(PEFTFixture.llamaBase, [(PEFTFixture.adapter("rslora"), 0.5), (Self.a, 1)], to: dir.file("s.safetensors")).values
        MergeTests.expectClose(merged, sequential)

        let patterns = try Self.stack([(PEFTFixture.adapter("patterns"), 1), (PEFTFixture.adapter("patterns"), 1)], .init(method: .cat), in: dir, name: "twice")
        #expect(Set(patterns.replacements.map(\.target)) == ["lm_head.weight", "model.embed_tokens.weight"])
        #expect(patterns.config!.modulesToSave == ["lm_head"])
    }

    @Test func rejectsDoRAAndMissingDensity() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        #expect(throws: ScalpelError.self) { _ = try Self.stack([(PEFTFixture.adapter("dora"), 1)], .init(method: .cat), in: dir) }
        #expect(throws: ScalpelError.self) { _ = try Self.stack([(Self.a, 1)], .init(method: .ties), in: dir) }
        #expect(throws: ScalpelError.self) {
            _ = try Self.stack([(PEFTFixture.adapter("rslora"), 1), (PEFTFixture.adapter("patterns"), 1)], .init(method: .cat), in: dir)
        }
        #expect(dir.entries().isEmpty)
    }

    /// The combined f64 update of each module of the inputs, `sum_i w_i s_i B_i A_i`.
    static func weightedSum(_ list: [(String, Double)]) throws -> [String: [Double]] {
        var out: [String: [Double]] = [:]
        for (path, w) in list {
            let adapter = try LoRAAdapter.open(path)
            for m in adapter.modules {
                let p = try product(adapter, m, weight: w)
                out[m.path] = out[m.path].map { zip($0, p).map(+) } ?? p
            }
        }
        return out
    }

    /// sqrt(sum_{i>k} s_i^2 / sum s_i^2) of a dense [rows, cols] matrix: the optimal rank-k error.
    static func optimalError(_ d: [Double], rows: Int, cols: Int, rank k: Int) throws -> Double {
        let s = try Linalg.exactSVD(Matrix(rows: rows, cols: cols, values: d.map(Float.init))).singularValues.map(Double.init)
        let all = s.reduce(0) { $0 + $1 * $1 }, tail = s.dropFirst(k).reduce(0) { $0 + $1 * $1 }
        return (tail / all).squareRoot()
    }

    static func frobeniusRelative(_ got: [Double], _ want: [Double]) -> Double {
        let diff = zip(got, want).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        return (diff / want.reduce(0) { $0 + $1 * $1 }).squareRoot()
    }

    @Test func svdAtFullRankEqualsTheWeightedSum() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let list = [(Self.a, 0.7), (Self.b, -0.3)]
        let plan = try Stack.write(try Self.inputs(list), options: .init(method: .svd, rank: 64), to: dir.file("out"))
        let out = try LoRAAdapter.open(dir.file("out"))
        let want = try Self.weightedSum(list)
        for m in out.modules {
            #expect(m.rank == (m.path.hasSuffix("v_proj") ? 6 : (m.path.hasSuffix("q_proj") || m.path.hasSuffix("up_proj") ? 4 : 2)))
            #expect(Self.relative(try Self.product(out, m), want[m.path]!) <= 1e-5, "\(m.path)")
        }
        #expect(plan.truncations.count == 10 && plan.overallRelativeError! < 1e-3)
    }

    @Test func svdTruncationIsOptimalAndReportsItsError() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let list = [(Self.a, 1.0), (Self.b, 1.0)]
        let plan = try Stack.write(try Self.inputs(list), options: .init(method: .svd, rank: 2), to: dir.file("out"))
        let out = try LoRAAdapter.open(dir.file("out"))
        let want = try Self.weightedSum(list)
        for m in out.modules {
            #expect(m.rank == 2)
            let d = want[m.path]!
            let optimal = try Self.optimalError(d, rows: m.productShape[0], cols: m.productShape[1], rank: 2)
            let actual = Self.frobeniusRelative(try Self.product(out, m), d)
            let reported = try #require(plan.truncations.first { $0.module == m.path }).relativeError
            #expect(abs(actual - optimal) < 1e-4, "\(m.path): \(actual) vs optimal \(optimal)")
            #expect(abs(reported - actual) < 1e-3, "\(m.path): reported \(reported) vs \(actual)")
        }
    }

    @Test func tiesSVDAtFullRankEqualsTiesAndTruncatesNearOptimally() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let dense = try Self.stack(Self.sparseInputs, .init(method: .ties, density: 0.3), in: dir, name: "ties")
        let full = try Self.stack(Self.sparseInputs, .init(method: .tiesSVD, density: 0.3, rank: 64), in: dir, name: "full")
        let plan = try Stack.write(try Self.inputs(Self.sparseInputs), options: .init(method: .tiesSVD, density: 0.3, seed: 5, rank: 4),
                                   to: dir.file("small"))
        let small = try LoRAAdapter.open(dir.file("small"))
        for m in dense.modules {
            let d = try Self.product(dense, m)
            let f = try #require(full.modules.first { $0.path == m.path })
            #expect(f.rank == m.productShape.min()!)
            #expect(Self.relative(try Self.product(full, f), d) <= 1e-5, "\(m.path)")
            let t = try #require(small.modules.first { $0.path == m.path })
            #expect(t.rank == 4)
            let optimal = try Self.optimalError(d, rows: m.productShape[0], cols: m.productShape[1], rank: 4)
            let actual = Self.frobeniusRelative(try Self.product(small, t), d)
            #expect(actual >= optimal - 1e-4 && actual <= optimal * 1.05 + 1e-4, "\(m.path): \(actual) vs optimal \(optimal)")
            let reported = try #require(plan.truncations.first { $0.module == m.path }).relativeError
            #expect(abs(reported - actual) < 1e-3)
        }
    }
}

/// The output factors of one stacked module, computed when the writer asks for them.
///
/// - `cat` / `linear`: A' = [f_1 A_1; f_2 A_2; ...] (rows), B' = [B_1, B_2, ...] (columns), with
///   f_i = w_i * s_i; rank = sum of ranks. B' A' = sum_i f_i B_i A_i exactly.
/// - `svd`: the SVD of that exact sum (from its factors, `StackSVD.ofProduct`), truncated to
///   min(R, sum of ranks, rows, cols): B' = U S, A' = Vt.
/// - the sparsifying methods: the combined dense update D [rows, cols] as exact factors of rank
///   min(rows, cols): A' = D and B' = identity when rows <= cols, else B' = D and A' = identity; with the
///   SVD step, the randomized SVD of D truncated to min(R, rows, cols): B' = U S, A' = Vt.
/// Whatever both factors need is computed once and dropped when both are written. The factor whose fill
/// computes the SVD returns its truncation as its outcome.
/// `@unchecked Sendable`: the writer fills a file's tensors one after another on one thread; `written()`
/// runs on the writer's queue, but empties the cache only after both fills have returned (each write is
/// queued after its fill), so the cached state is never touched concurrently.
final class StackFactors: @unchecked Sendable {
    let module: StackModule
    let rule: StackCombine.Rule?
    /// The rank R of the SVD step, or nil.
    let svdRank: Int?
    let svdOptions: RandomizedSVDOptions
    /// The output rank.
    let rank: Int
    private var dense: [Float]?
    private var factors: LoRAFactors?
    private var unwritten = 2

    init(_ module: StackModule, rule: StackCombine.Rule?, svdRank: Int?, svdOptions: RandomizedSVDOptions) {
        self.module = module
        self.rule = rule
        self.svdRank = svdRank
        self.svdOptions = svdOptions
        let full = rule == nil ? module.members.reduce(0) { $0 + $1.module.rank } : min(module.rows, module.cols)
        rank = svdRank.map { min($0, full, module.rows, module.cols) } ?? full
    }

    /// A', B' and, when `includeBias`, the combined `lora_B` bias (zeros for a module without one).
    func outputs(includeBias: Bool) -> [OutputTensor] {
        let path = module.path, kind = module.kind
        var out = [
            OutputTensor(name: PEFTAdapterWriter.aKey(path, kind: kind), type: .plain(.f32), shape: [rank, module.cols],
                         content: .compute { [self] in try fillA($0.bindMemory(to: Float.self)) }, action: "stack factor A",
                         onWritten: { [self] in written() }),
            OutputTensor(name: PEFTAdapterWriter.bKey(path, kind: kind), type: .plain(.f32), shape: [module.rows, rank],
                         content: .compute { [self] in try fillB($0.bindMemory(to: Float.self)) }, action: "stack factor B",
                         onWritten: { [self] in written() }),
        ]
        if includeBias {
            out.append(OutputTensor(name: PEFTAdapterWriter.biasKey(path), type: .plain(.f32), shape: [module.rows],
                                    content: .compute { [self] out in
                                        let bias = try module.combinedBias()
                                        bias.withUnsafeBytes { out.copyMemory(from: $0) }
                                        return .none
                                    }, action: "stack bias"))
        }
        return out
    }

    private func fillA(_ out: UnsafeMutableBufferPointer<Float>) throws -> TensorOutcome {
        if svdRank != nil {
            let (f, outcome) = try truncated()
            _ = out.update(fromContentsOf: f.a.values)
            return outcome
        } else if rule == nil {
            _ = out.update(fromContentsOf: try catA())
        } else if module.rows <= module.cols {
            _ = out.update(fromContentsOf: try combined())
        } else {
            fillIdentity(out, size: module.cols)
        }
        return .none
    }

    private func fillB(_ out: UnsafeMutableBufferPointer<Float>) throws -> TensorOutcome {
        if svdRank != nil {
            let (f, outcome) = try truncated()
            _ = out.update(fromContentsOf: f.b.values)
            return outcome
        } else if rule == nil {
            _ = out.update(fromContentsOf: try catB())
        } else if module.rows <= module.cols {
            fillIdentity(out, size: module.rows)
        } else {
            _ = out.update(fromContentsOf: try combined())
        }
        return .none
    }

    /// [f_1 A_1; f_2 A_2; ...], [sum r_i, cols].
    private func catA() throws -> [Float] {
        var out: [Float] = []
        out.reserveCapacity(module.members.reduce(0) { $0 + $1.module.rank } * module.cols)
        for m in module.members {
            let f = Float(m.factor)
            out += try FloatConversion.floats(try m.adapter.view(m.module.aName)).map { f * $0 }
        }
        return out
    }

    /// [B_1, B_2, ...], [rows, sum r_i].
    private func catB() throws -> [Float] {
        let total = module.members.reduce(0) { $0 + $1.module.rank }
        var out = [Float](repeating: 0, count: module.rows * total)
        var col = 0
        for m in module.members {
            let b = try FloatConversion.floats(try m.adapter.view(m.module.bName))
            let r = m.module.rank
            for j in 0..<module.rows {
                for c in 0..<r { out[j * total + col + c] = b[j * r + c] }
            }
            col += r
        }
        return out
    }

    private func fillIdentity(_ out: UnsafeMutableBufferPointer<Float>, size: Int) {
        out.update(repeating: 0)
        for i in 0..<size { out[i * size + i] = 1 }
    }

    private func combined() throws -> [Float] {
        if let dense { return dense }
        let d = try StackCombine.combine(module, rule: rule!)
        dense = d
        return d
    }

    /// The SVD step: of the exact sum (no rule) or of the combined dense update, with its truncation as
    /// an outcome the first time (`.none` after).
    private func truncated() throws -> (LoRAFactors, TensorOutcome) {
        if let factors { return (factors, .none) }
        let svd: SingularValueDecomposition
        let energy: Double, lost: Double
        if rule == nil {
            // The exact SVD has every non-zero singular value: the loss is the tail's energy, not a
            // difference of squares (which f32 rounding dominates below about 1e-3).
            let total = module.members.reduce(0) { $0 + $1.module.rank }
            let full = try StackSVD.ofProduct(b: Matrix(rows: module.rows, cols: total, values: try catB()),
                                              a: Matrix(rows: total, cols: module.cols, values: try catA()))
            let k = min(rank, full.rank)
            svd = full.truncated(to: k)
            let s = full.singularValues.map { Double($0) * Double($0) }
            energy = s.reduce(0, +)
            lost = s.dropFirst(k).reduce(0, +)
        } else {
            let d = Matrix(rows: module.rows, cols: module.cols, values: try StackCombine.combine(module, rule: rule!))
            svd = try RandomizedSVD.decompose(d, rank: rank, options: svdOptions)
            let e = svd.relativeError
            energy = svd.frobeniusNormSquared
            lost = e * e * svd.frobeniusNormSquared
        }
        let outcome = TensorOutcome(truncation: .init(rank: svd.rank, energy: energy, lostEnergy: lost))
        let f = svd.loraFactors(split: .intoB)
        factors = f
        return (f, outcome)
    }

    private func written() {
        unwritten -= 1
        if unwritten == 0 {
            dense = nil
            factors = nil
        }
    }
}

/// The output factors of one stacked module, computed when the writer asks for them.
///
/// - `cat` / `linear`: A' = [f_1 A_1; f_2 A_2; ...] (rows), B' = [B_1, B_2, ...] (columns), with
///   f_i = w_i * s_i; rank = sum of ranks. B' A' = sum_i f_i B_i A_i exactly.
/// - the sparsifying methods: the combined dense update D [rows, cols] as exact factors of rank
///   min(rows, cols): A' = D and B' = identity when rows <= cols, else B' = D and A' = identity.
///   D is computed once for both factors and dropped when both are written.
final class StackFactors: @unchecked Sendable {
    let module: StackModule
    let rule: StackCombine.Rule?
    /// The output rank.
    let rank: Int
    private var dense: [Float]?
    private var unwritten = 2

    init(_ module: StackModule, rule: StackCombine.Rule?) {
        self.module = module
        self.rule = rule
        rank = rule == nil ? module.members.reduce(0) { $0 + $1.module.rank } : min(module.rows, module.cols)
    }

    /// A', B' and, when `includeBias`, the combined `lora_B` bias (zeros for a module without one).
    func outputs(includeBias: Bool) -> [OutputTensor] {
        let path = module.path, kind = module.kind
        var out = [
            OutputTensor(name: PEFTAdapterWriter.aKey(path, kind: kind), type: .plain(.f32), shape: [rank, module.cols],
                         content: .compute { [self] in try fillA($0.bindMemory(to: Float.self)) }, onWritten: { [self] in written() }),
            OutputTensor(name: PEFTAdapterWriter.bKey(path, kind: kind), type: .plain(.f32), shape: [module.rows, rank],
                         content: .compute { [self] in try fillB($0.bindMemory(to: Float.self)) }, onWritten: { [self] in written() }),
        ]
        if includeBias {
            out.append(OutputTensor(name: PEFTAdapterWriter.biasKey(path), type: .plain(.f32), shape: [module.rows],
                                    content: .compute { [self] out in
                                        let bias = try module.combinedBias()
                                        bias.withUnsafeBytes { out.copyMemory(from: $0) }
                                    }))
        }
        return out
    }

    private func fillA(_ out: UnsafeMutableBufferPointer<Float>) throws {
        let cols = module.cols
        guard rule != nil else {
            var row = 0
            for m in module.members {
                let a = try FloatConversion.floats(try m.adapter.view(m.module.aName))
                let f = Float(m.factor)
                for i in 0..<a.count { out[row * cols + i] = f * a[i] }
                row += m.module.rank
            }
            return
        }
        if module.rows <= cols {
            _ = out.update(fromContentsOf: try combined())
        } else {
            fillIdentity(out, size: cols)
        }
    }

    private func fillB(_ out: UnsafeMutableBufferPointer<Float>) throws {
        let rows = module.rows
        guard rule != nil else {
            var col = 0
            for m in module.members {
                let b = try FloatConversion.floats(try m.adapter.view(m.module.bName))
                let r = m.module.rank
                for j in 0..<rows {
                    for c in 0..<r { out[j * rank + col + c] = b[j * r + c] }
                }
                col += r
            }
            return
        }
        if rows <= module.cols {
            fillIdentity(out, size: rows)
        } else {
            _ = out.update(fromContentsOf: try combined())
        }
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

    private func written() {
        unwritten -= 1
        if unwritten == 0 { dense = nil }
    }
}

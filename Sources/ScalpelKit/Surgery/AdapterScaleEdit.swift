/// Merging IA3 modules: the base weight's rows or columns multiplied by the learned vector, as PEFT's
/// `IA3Layer.merge` does (`W *= l` with l [out, 1] or [1, in], transposed with fan_in_fan_out), and the
/// bias of a non-feedforward module multiplied by the same vector when the base has one.
enum AdapterScaleEdit {
    /// The edits of one IA3 module against `base`: the weight, and the bias of a row-scaling module.
    /// Missing targets and length mismatches are appended to `problems`.
    static func edits(_ m: AdapterDeltaModule, adapter: Checkpoint, weight: Double, base: Checkpoint,
                      baseName: (String) -> String?, problems: inout [(tensor: String, reason: String)]) -> [(TensorInfo, MergeEdit)] {
        guard case .scaleVector(let vectorName, let feedforward) = m.rule else { return [] }
        guard let name = baseName(m.weightName), let info = base.info(named: name) else {
            problems.append((vectorName, "targets \(m.weightName), which is not in the base"))
            return []
        }
        let length = max(m.productShape[0], m.productShape[1])
        // Output features are the rows of [out, in], the columns of a fan_in_fan_out [in, out] weight.
        let columns = feedforward != m.transposed
        guard info.shape.count == 2, info.shape[columns ? 1 : 0] == length else {
            problems.append((vectorName, "scales \(columns ? "columns" : "rows") of \(info.name) of shape \(info.shape) with a vector of length \(length)"))
            return []
        }
        var out = [(info, MergeEdit.scale(m, adapter: adapter, weight: weight, columns: columns))]
        let biasPath = m.weightName.hasSuffix(".weight") ? String(m.weightName.dropLast(7)) + ".bias" : m.weightName + ".bias"
        if !feedforward, let biasName = baseName(biasPath), let bias = base.info(named: biasName), bias.shape == [length] {
            out.append((bias, MergeEdit.scale(m, adapter: adapter, weight: weight, columns: false)))
        }
        return out
    }

    /// The multipliers: l at weight 1, else `1 + weight * (l - 1)`.
    static func factors(_ l: [Float], weight: Double) -> [Float] {
        weight == 1 ? l : l.map { 1 + Float(weight) * ($0 - 1) }
    }

    /// Multiplies rows `rows` of a [*, cols] tensor (held in `w`, those rows only) by `v[row]`, or each of
    /// their columns by `v[col]`.
    static func apply(_ v: [Float], columns: Bool, rows: Range<Int>, cols: Int, to w: UnsafeMutableBufferPointer<Float>) {
        for (k, i) in rows.enumerated() {
            for j in 0..<cols { w[k * cols + j] *= columns ? v[j] : v[i] }
        }
    }
}

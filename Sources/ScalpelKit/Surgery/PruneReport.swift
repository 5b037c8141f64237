/// What a pruning run did: per tensor and in total, target against achieved sparsity and the share of
/// the L2 norm removed.
public struct PruneReport: Sendable {
    /// One pruned tensor.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var type: TensorType
        public var shape: [Int]
        public var counts: PruneCounts
        /// Set for a block-quantized tensor re-quantized after pruning.
        public var requantization: Requantization?
    }

    /// A tensor left as it is, and why.
    public struct Skipped: Sendable, Equatable {
        public var name: String
        public var reason: String
    }

    /// A tensor that was dequantized, pruned and re-quantized to its ggml type.
    public struct Requantization: Sendable, Equatable {
        public var type: GGMLType
        /// The re-quantized values against the pruned ones.
        public var error: QuantError
    }

    public var method: Prune.Method
    public var tensors: [Entry]
    public var skipped: [Skipped]

    /// The fraction each tensor was asked to lose (the same for all; `global` reaches it overall).
    public var targetSparsity: Double { method.targetSparsity }

    /// All pruned tensors added up.
    public var total: PruneCounts {
        var t = PruneCounts()
        for e in tensors { t.add(e.counts) }
        return t
    }

    /// The re-quantizations, in tensor order.
    var requantized: [Requantization] { tensors.compactMap(\.requantization) }

    /// "2:4" for N:M, else nil.
    var patternText: String? {
        if case .pattern(let keep, let group) = method { return "\(keep):\(group)" }
        return nil
    }

    /// The `--json` / `--report` object. Keys: scope, pattern (null unless N:M), tensors (name, shape,
    /// dtype, elements, target_sparsity, achieved_sparsity, zeroed, norm_removed_fraction,
    /// requantized_to, requantization_relative_rmse), skipped (name, reason) and total (tensors,
    /// elements, target_sparsity, achieved_sparsity, zeroed, norm_removed_fraction, requantized).
    /// `zeroed` counts the elements in the mask (already-zero ones included); `achieved_sparsity` is
    /// the zero fraction of the output (after re-quantization for re-quantized tensors);
    /// `norm_removed_fraction` is ||w - w'|| / ||w|| over the finite values (of the dequantized values
    /// for quantized inputs); `dtype` is the output's type; the two requantization keys are null unless
    /// the tensor was block-quantized and re-quantized to its ggml type.
    public var json: JSONValue {
        let t = total
        return .object([
            ("scope", .string(method.scopeName)),
            ("pattern", patternText.map { .string($0) } ?? .null),
            ("tensors", .array(tensors.map { e in
                .object([
                    ("name", .string(e.name)),
                    ("shape", .array(e.shape.map { .int($0) })),
                    ("dtype", .string(e.type.description)),
                    ("elements", .int(e.counts.elements)),
                    ("target_sparsity", .double(targetSparsity)),
                    ("achieved_sparsity", .double(e.counts.achievedSparsity)),
                    ("zeroed", .int(e.counts.zeroed)),
                    ("norm_removed_fraction", .double(e.counts.normRemovedFraction)),
                    ("requantized_to", e.requantization.map { .string($0.type.name) } ?? .null),
                    ("requantization_relative_rmse", e.requantization.map { .double($0.error.relativeRMSE) } ?? .null),
                ])
            })),
            ("skipped", .array(skipped.map { .object([("name", .string($0.name)), ("reason", .string($0.reason))]) })),
            ("total", .object([
                ("tensors", .int(tensors.count)),
                ("elements", .int(t.elements)),
                ("target_sparsity", .double(targetSparsity)),
                ("achieved_sparsity", .double(t.achievedSparsity)),
                ("zeroed", .int(t.zeroed)),
                ("norm_removed_fraction", .double(t.normRemovedFraction)),
                ("requantized", .int(requantized.count)),
            ])),
        ])
    }

    /// The summary table: one line per pruned tensor, then the total.
    public var text: String {
        let how = patternText.map { "pattern \($0)" } ?? "scope \(method.scopeName)"
        let t = total
        var lines = ["pruned \(tensors.count) tensors holding \(Format.grouped(t.elements)) weights (\(how), target sparsity \(percent(targetSparsity))); \(skipped.count) tensors left as they are"]
        var table = TextTable(header: ["tensor", "dtype", "shape", "target", "achieved", "zeroed", "norm removed"], rightAligned: [3, 4, 5, 6])
        for e in tensors {
            table.add([e.name, e.type.description, e.shape.map(String.init).joined(separator: "x"), percent(targetSparsity),
                       percent(e.counts.achievedSparsity), Format.grouped(e.counts.zeroed), percent(e.counts.normRemovedFraction)])
        }
        table.add(["total", "", "", percent(targetSparsity), percent(t.achievedSparsity),
                   Format.grouped(t.zeroed), percent(t.normRemovedFraction)])
        lines.append(table.render())
        if let worst = requantized.map(\.error.relativeRMSE).max() {
            let types = Set(requantized.map(\.type.name)).sorted().joined(separator: ", ")
            lines.append("\(requantized.count) quantized tensors (\(types)) were dequantized, pruned and re-quantized to their type; "
                         + "re-quantization relative RMSE up to \(Format.stat(worst))")
        }
        return lines.joined(separator: "\n")
    }

    private func percent(_ v: Double) -> String { Format.fixed(100 * v, 2) + "%" }
}

import ArgumentParser
import ScalpelKit

extension Scalpel {
    struct Prune: PlanningCommand {
        static let configuration = CommandConfiguration(
            abstract: "Zero the smallest-magnitude weights: per tensor, per row, globally, whole channels, or N:M.",
            discussion: """
            Exactly round_half_even(S * n) weights with the smallest |w| become 0 (torch.nn.utils.prune \
            counts); ties go by position, the lower index first (in --scope global, the tensor that \
            inspect --tensors lists first goes first). NaN counts as the largest magnitude. Weights that \
            are already 0 count toward the target. Every dtype is kept (F16 stays F16). Applies to the 2-D \
            linear weights; norms, biases, embeddings and the output head are copied unless selected.

            Examples:
              scalpel prune model.safetensors pruned.safetensors.zst --sparsity 0.5
              scalpel prune model.safetensors pruned.safetensors --sparsity 0.7 --scope global --json
              scalpel prune model.safetensors sparse24.safetensors --pattern 2:4 --report prune.json
              scalpel prune model.gguf pruned.gguf --keep 0.6 --scope row --skip 'blk.*.attn_v.*'
            """
        )

        @Argument(help: "The input checkpoint.")
        var input: String

        @Argument(help: "The output path (format from the name, as in convert).")
        var output: String

        @Option(help: "Fraction of the weights to zero (0 <= S < 1).")
        var sparsity: Double?

        @Option(help: "Fraction of the weights to keep (0 < K <= 1); keeps round_half_even(K * n).")
        var keep: Double?

        @Option(help: "tensor (each tensor), row (each output row), global (one threshold over all selected tensors), channel (whole rows with the smallest L2 norm).")
        var scope: PruneScopeArgument?

        @Option(help: "N:M semi-structured sparsity instead of --sparsity: keep the N largest |w| of every M consecutive weights along a row (e.g. 2:4).")
        var pattern: String?

        @OptionGroup var selection: SelectionOptions
        @OptionGroup var zstd: OutputOptions
        @OptionGroup var writing: WriteOptions
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            let given = [sparsity != nil, keep != nil, pattern != nil].filter { $0 }.count
            guard given == 1 else { throw ValidationError("give exactly one of --sparsity, --keep or --pattern") }
            if let sparsity, !(0..<1).contains(sparsity) { throw ValidationError("--sparsity must be at least 0 and below 1") }
            if let keep, !(keep > 0 && keep <= 1) { throw ValidationError("--keep must be above 0 and at most 1") }
            if let pattern {
                guard scope == nil else { throw ValidationError("--pattern works along rows; it cannot be combined with --scope") }
                guard parsePattern(pattern) != nil else {
                    throw ValidationError("--pattern must be N:M with 0 < N < M <= \(PatternMask.maxGroup), e.g. 2:4")
                }
            }
        }

        func plan() throws -> Plan {
            let ckpt = try CheckpointReader.open(input)
            let dest = try Destination(path: output, zstdLevel: zstd.zstdLevel)
            return try ScalpelKit.Prune.plan(ckpt, for: dest, options: .init(method: method, selection: selection.selection))
        }

        /// The method the flags ask for (after `validate`).
        var method: ScalpelKit.Prune.Method {
            if let pattern, let (n, m) = parsePattern(pattern) { return .pattern(keep: n, group: m) }
            let amount: ScalpelKit.Prune.Amount = keep.map { .keep($0) } ?? .sparsity(sparsity ?? 0)
            switch scope ?? .tensor {
            case .tensor: return .tensor(amount)
            case .row: return .row(amount)
            case .global: return .global(amount)
            case .channel: return .channel(amount)
            }
        }

        /// "N:M" with 0 < N < M <= the largest group, or nil.
        func parsePattern(_ text: String) -> (Int, Int)? {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let n = Int(parts[0]), let m = Int(parts[1]),
                  n > 0, n < m, m <= PatternMask.maxGroup else { return nil }
            return (n, m)
        }
    }
}

/// `--scope` values.
enum PruneScopeArgument: String, ExpressibleByArgument, CaseIterable {
    case tensor, row, global, channel
}

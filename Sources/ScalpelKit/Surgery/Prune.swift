/// Magnitude pruning: the `prune` command's transform (torch.nn.utils.prune semantics, exact counts).
///
/// Every method removes an exact number of elements chosen by magnitude, breaking ties by position
/// (the lower index is removed first; in `global` scope, the tensor listed first in the checkpoint
/// first, as `Checkpoint.tensors` orders them).
/// Elements that are already zero have the smallest magnitude, so they count toward the target, as in
/// torch. Removed elements become +0 in the tensor's own dtype; nothing else changes. Block-quantized
/// GGUF tensors are pruned on their dequantized values and re-quantized to their type (or written as F32
/// when the output is not GGUF).
public enum Prune {
    /// How much to remove.
    public enum Amount: Sendable, Equatable {
        /// Remove `round_half_even(s * n)` of `n` elements, as torch's `amount=s` does.
        case sparsity(Double)
        /// Keep `round_half_even(f * n)` of `n` elements and remove the rest.
        case keep(Double)

        /// How many of `n` elements (or rows) to remove.
        public func count(of n: Int) -> Int {
            switch self {
            case .sparsity(let s): return min(n, max(0, Int((s * Double(n)).rounded(.toNearestOrEven))))
            case .keep(let f): return n - min(n, max(0, Int((f * Double(n)).rounded(.toNearestOrEven))))
            }
        }

        /// The fraction removed that was asked for.
        public var sparsity: Double {
            switch self {
            case .sparsity(let s): return s
            case .keep(let f): return 1 - f
            }
        }
    }

    /// What to remove.
    public enum Method: Sendable, Equatable {
        /// The smallest magnitudes of each tensor (`l1_unstructured`).
        case tensor(Amount)
        /// The smallest magnitudes of each row (rows along the first dimension).
        case row(Amount)
        /// The smallest magnitudes over all selected tensors together (`global_unstructured`).
        case global(Amount)
        /// The rows with the smallest L2 norm (`ln_structured(n=2, dim=0)`).
        case channel(Amount)
        /// In every group of `group` consecutive elements along a row, all but the `keep` largest.
        case pattern(keep: Int, group: Int)

        /// The scope's name as the command line spells it ("pattern" for N:M).
        public var scopeName: String {
            switch self {
            case .tensor: return "tensor"
            case .row: return "row"
            case .global: return "global"
            case .channel: return "channel"
            case .pattern: return "pattern"
            }
        }

        /// "50% per tensor", "2:4": what `--dry-run` and `--verbose` show.
        public var description: String {
            if case .pattern(let keep, let group) = self { return "\(keep):\(group)" }
            return Format.fixed(targetSparsity * 100, 1) + "% per " + scopeName
        }

        /// The fraction of elements asked to be removed.
        public var targetSparsity: Double {
            switch self {
            case .tensor(let a), .row(let a), .global(let a), .channel(let a): return a.sparsity
            case .pattern(let keep, let group): return Double(group - keep) / Double(group)
            }
        }
    }

    /// Options of a pruning run.
    public struct Options: Sendable {
        public var method: Method
        /// Which tensors are pruned (the others are copied unchanged).
        public var selection: TensorSelection

        public init(method: Method, selection: TensorSelection = TensorSelection()) {
            self.method = method
            self.selection = selection
        }
    }

    /// Plans the output of pruning `input` for `destination`.
    ///
    /// Selected tensors are checked first (float dtype; row length a multiple of M for N:M), so a bad
    /// input fails before anything is written. For `global` scope the threshold is computed here, in
    /// passes over the selected tensors that release each tensor's pages when done; the other scopes
    /// select inside each tensor while it is written; each returns its counts, from which the report is
    /// built after writing. A folder output gets the input folder's companion files.
    /// - Throws: `ScalpelError.invalid` naming the file and tensor when a selected tensor cannot be
    ///   pruned, or when nothing is selected.
    public static func plan(_ input: Checkpoint, for destination: Destination, options: Options) throws -> Plan {
        var chosen: [Int] = []
        var skipped: [PruneReport.Skipped] = []
        let toGGUF = destination.kind == .gguf
        for (i, info) in input.tensors.enumerated() {
            if let reason = options.selection.exclusionReason(info) {
                skipped.append(.init(name: info.name, reason: reason))
            } else {
                try check(info, file: input.path, method: options.method, toGGUF: toGGUF)
                chosen.append(i)
            }
        }
        guard !chosen.isEmpty else {
            throw ScalpelError.invalid(file: input.path, tensor: nil, reason: "no tensor is selected for pruning (see --only, --skip, --include-embeddings, --include-head)")
        }
        let global: [MagnitudeThreshold]? = if case .global(let amount) = options.method {
            try globalThresholds(input, chosen, amount)
        } else { nil }
        var plan = try Convert.plan(input, for: destination, options: .init())
        let outputs = chosen.map { i -> TensorInfo in
            var info = input.tensors[i]
            info.type = outputType(info.type, toGGUF: toGGUF)
            return info
        }
        for (slot, i) in chosen.enumerated() {
            plan.tensors[i] = try prunedTensor(input, index: i, as: outputs[slot].type, method: options.method, threshold: global?[slot])
        }
        let method = options.method
        plan.report = { [skipped] result in
            let entries = outputs.map { info -> PruneReport.Entry in
                let outcome = result.outcomes[info.name]
                var requantization: PruneReport.Requantization? = nil
                if case .block(let g) = info.type, let error = outcome?.error { requantization = .init(type: g, error: error) }
                return PruneReport.Entry(name: info.name, type: info.type, shape: info.shape, counts: outcome?.pruned ?? PruneCounts(),
                                         requantization: requantization)
            }
            let report = PruneReport(method: method, tensors: entries, skipped: skipped)
            guard case .object(let fields) = report.json else { return Report(text: report.text, details: report) }
            return Report(text: report.text, fields: fields, details: report)
        }
        return plan
    }

    /// The type a pruned tensor is written as: its own, except that a ggml block type becomes F32 when
    /// the output is not GGUF (dequantized, as `convert` does).
    static func outputType(_ type: TensorType, toGGUF: Bool) -> TensorType {
        if case .block = type, !toGGUF { return .plain(.f32) }
        return type
    }

    /// The output tensor of a selected tensor. Block-quantized tensors are dequantized, pruned on the
    /// dequantized values and, when `type` is the same block type, re-quantized with ggml's reference
    /// quantizer (the achieved sparsity is then counted on the re-quantized values).
    static func prunedTensor(_ input: Checkpoint, index i: Int, as type: TensorType, method: Method,
                             threshold: MagnitudeThreshold?) throws -> OutputTensor {
        let info = input.tensors[i]
        let view = try input.view(at: i)
        return OutputTensor(name: info.name, type: type, shape: info.shape, content: .compute { buf in
            try withMagnitudes(view, file: input.path) { source in
                guard case .block(let g) = type else {
                    return TensorOutcome(pruned: apply(method, to: source, shape: info.shape, threshold: threshold, into: buf))
                }
                var pruned = [Float](repeating: 0, count: source.count)
                var counts = pruned.withUnsafeMutableBytes { apply(method, to: source, shape: info.shape, threshold: threshold, into: $0) }
                let error = try requantize(pruned, as: g, into: buf, counts: &counts, file: input.path, tensor: info.name)
                return TensorOutcome(error: error, pruned: counts)
            }
        }, action: "prune " + method.description, onWritten: { input.release(info.name) })
    }

    /// Quantizes pruned values to `type` into `out`; counts the zeros of the re-quantized values into
    /// `counts.zerosAfter` and returns the re-quantization error.
    static func requantize(_ pruned: [Float], as type: GGMLType, into out: UnsafeMutableRawBufferPointer, counts: inout PruneCounts,
                           file: String, tensor: String) throws -> QuantError {
        try pruned.withUnsafeBufferPointer { p in
            do { try GGMLQuantize.quantize(type, p, into: out) } catch let ScalpelError.invalid(_, _, reason) {
                throw ScalpelError.invalid(file: file, tensor: tensor, reason: "re-quantizing the pruned values to \(type.name): " + reason)
            }
            var back = [Float](repeating: 0, count: p.count)
            try back.withUnsafeMutableBufferPointer { try GGMLDequantize.dequantize(type, UnsafeRawBufferPointer(out), into: $0) }
            counts.zerosAfter = back.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
            return back.withUnsafeBufferPointer { QuantError.measure(original: p, reconstructed: $0) }
        }
    }

    /// Calls `body` with the magnitudes of a tensor: its stored values, or for a ggml block type its
    /// dequantized values (an f32 copy for the duration of the call).
    static func withMagnitudes<R>(_ view: TensorView, file: String, _ body: (MagnitudeSource) throws -> R) throws -> R {
        let n = view.info.elementCount
        switch view.info.type {
        case .plain(let d):
            return try body(MagnitudeSource(bytes: view.bytes, dtype: d, count: n))
        case .block(let g):
            var values = [Float](repeating: 0, count: n)
            do {
                try values.withUnsafeMutableBufferPointer { try GGMLDequantize.dequantize(g, view.bytes, into: $0) }
            } catch let ScalpelError.invalid(_, _, reason) {
                throw ScalpelError.invalid(file: file, tensor: view.info.name, reason: reason)
            }
            return try values.withUnsafeBytes { try body(MagnitudeSource(bytes: $0, dtype: .f32, count: n)) }
        }
    }

    /// Prunes one tensor's values into `out` (same dtype and layout).
    /// - Parameter threshold: the tensor's share of the global threshold (`global` scope only).
    public static func apply(_ method: Method, to source: MagnitudeSource, shape: [Int], threshold: MagnitudeThreshold? = nil, into out: UnsafeMutableRawBufferPointer) -> PruneCounts {
        let n = source.count
        let length = rowLength(shape)
        switch method {
        case .tensor(let amount):
            return SmallestMask.apply(amount.count(of: n), of: source, into: out)
        case .global:
            return ThresholdMask.apply(source, threshold ?? .nothing, into: out)
        case .row(let amount):
            return RowMask.apply(source, rowLength: length, k: amount.count(of: length), into: out)
        case .channel(let amount):
            return ChannelMask.apply(source, rowLength: length, k: amount.count(of: length > 0 ? n / length : 0), into: out)
        case .pattern(let keep, let group):
            return PatternMask.apply(source, keep: keep, group: group, into: out)
        }
    }

    /// Elements per row: the product of all dimensions but the first (the whole tensor when 1-D).
    public static func rowLength(_ shape: [Int]) -> Int {
        shape.count >= 2 ? shape.dropFirst().reduce(1, *) : shape.reduce(1, *)
    }

    /// Refuses tensors that cannot be pruned as asked (before anything is written).
    static func check(_ info: TensorInfo, file: String, method: Method, toGGUF: Bool) throws {
        switch info.type {
        case .block(let g) where !GGMLDequantize.supportedTypes.contains(g):
            throw ScalpelError.invalid(file: file, tensor: info.name, reason: "prune of quantized tensors needs dequantization, and \(g.name) cannot be dequantized (supported: \(GGMLDequantize.supportedTypes.map(\.name).joined(separator: ", "))); leave it out with --skip")
        case .block(let g) where toGGUF && !GGMLQuantize.supportedTypes.contains(g):
            throw ScalpelError.invalid(file: file, tensor: info.name, reason: "prune of quantized tensors needs re-quantization, and Scalpel cannot quantize to \(g.name) (it re-quantizes \(GGMLQuantize.supportedTypes.map(\.name).joined(separator: ", "))); write a .safetensors output (dequantized to F32) or leave it out with --skip")
        case .plain(let d) where !MagnitudeSource.dtypes.contains(d):
            throw ScalpelError.invalid(file: file, tensor: info.name, reason: "cannot prune \(d.rawValue) values (only F32, F16, BF16 and F64)")
        default:
            break
        }
        if case .pattern(let keep, let group) = method {
            let length = rowLength(info.shape)
            guard length % group == 0 else {
                throw ScalpelError.invalid(file: file, tensor: info.name, reason: "row length \(length) (shape \(info.shape)) is not a multiple of \(group), as --pattern \(keep):\(group) needs")
            }
        }
    }
}

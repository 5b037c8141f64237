/// Magnitude pruning: the `prune` command's transform (torch.nn.utils.prune semantics, exact counts).
///
/// Every method removes an exact number of elements chosen by magnitude, breaking ties by position
/// (the lower index is removed first; in `global` scope, the earlier tensor in file order first).
/// Elements that are already zero have the smallest magnitude, so they count toward the target, as in
/// torch. Removed elements become +0 in the tensor's own dtype; nothing else changes.
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
    /// select inside each tensor while it is written. The ledger fills in as tensors are written.
    /// - Throws: `ScalpelError.invalid` naming the file and tensor when a selected tensor cannot be
    ///   pruned, or when nothing is selected.
    public static func plan(_ input: Checkpoint, for destination: Destination, options: Options) throws -> (tensors: [OutputTensor], metadata: Metadata, ledger: PruneLedger) {
        var chosen: [Int] = []
        var skipped: [PruneLedger.Skipped] = []
        for (i, info) in input.tensors.enumerated() {
            if let reason = options.selection.exclusionReason(info) {
                skipped.append(.init(name: info.name, reason: reason))
            } else {
                try check(info, file: input.path, method: options.method)
                chosen.append(i)
            }
        }
        guard !chosen.isEmpty else {
            throw ScalpelError.invalid(file: input.path, tensor: nil, reason: "no tensor is selected for pruning (see --only, --skip, --include-embeddings, --include-head)")
        }
        let global: [MagnitudeThreshold]? = if case .global(let amount) = options.method {
            try globalThresholds(input, chosen, amount)
        } else { nil }
        let base = try Convert.plan(input, for: destination, options: .init())
        var tensors = base.tensors
        let ledger = PruneLedger(method: options.method, tensors: chosen.map { input.tensors[$0] }, skipped: skipped)
        for (slot, i) in chosen.enumerated() {
            let info = input.tensors[i]
            let view = try input.view(at: i)
            let method = options.method
            let threshold = global?[slot]
            tensors[i] = OutputTensor(name: info.name, type: info.type, shape: info.shape, content: .compute { buf in
                let source = MagnitudeSource(bytes: view.bytes, dtype: info.type.dtype!, count: info.elementCount)
                ledger.record(slot, apply(method, to: source, shape: info.shape, threshold: threshold, into: buf))
            }, onWritten: { input.release(info.name) })
        }
        return (tensors, base.metadata, ledger)
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

    /// Refuses tensors that cannot be pruned as asked.
    static func check(_ info: TensorInfo, file: String, method: Method) throws {
        switch info.type {
        case .block(let g):
            throw ScalpelError.invalid(file: file, tensor: info.name, reason: "prune of quantized tensors needs re-quantization, which is not available yet (\(g.name)); leave it out with --skip")
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

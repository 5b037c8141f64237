import Foundation

/// The results of a pruning plan, filled in tensor by tensor as the output is written.
public final class PruneLedger: @unchecked Sendable {
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

    /// The method the plan applies.
    public let method: Prune.Method
    /// The pruned tensors, in input order, with the type they are written as.
    public let tensors: [TensorInfo]
    /// The tensors not selected, in input order.
    public let skipped: [Skipped]
    private var counts: [PruneCounts?]
    private var requantizations: [Requantization?]
    private let lock = NSLock()

    init(method: Prune.Method, tensors: [TensorInfo], skipped: [Skipped]) {
        self.method = method
        self.tensors = tensors
        self.skipped = skipped
        self.counts = Array(repeating: nil, count: tensors.count)
        self.requantizations = Array(repeating: nil, count: tensors.count)
    }

    /// Stores the counts of the `slot`-th pruned tensor (and its re-quantization, if any).
    func record(_ slot: Int, _ c: PruneCounts, requantization: Requantization? = nil) {
        lock.lock()
        counts[slot] = c
        requantizations[slot] = requantization
        lock.unlock()
    }

    /// The report, once every pruned tensor has been written.
    /// - Precondition: the plan's tensors have all been written.
    public var report: PruneReport {
        lock.lock()
        defer { lock.unlock() }
        let entries = tensors.indices.map { i -> PruneReport.Entry in
            guard let c = counts[i] else { preconditionFailure("\(tensors[i].name) has not been written yet") }
            return PruneReport.Entry(name: tensors[i].name, type: tensors[i].type, shape: tensors[i].shape, counts: c,
                                     requantization: requantizations[i])
        }
        return PruneReport(method: method, tensors: entries, skipped: skipped)
    }
}

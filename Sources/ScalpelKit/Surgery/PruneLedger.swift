import Foundation

/// The results of a pruning plan, filled in tensor by tensor as the output is written.
public final class PruneLedger: @unchecked Sendable {
    /// A tensor left as it is, and why.
    public struct Skipped: Sendable, Equatable {
        public var name: String
        public var reason: String
    }

    /// The method the plan applies.
    public let method: Prune.Method
    /// The pruned tensors, in input order.
    public let tensors: [TensorInfo]
    /// The tensors not selected, in input order.
    public let skipped: [Skipped]
    private var counts: [PruneCounts?]
    private let lock = NSLock()

    init(method: Prune.Method, tensors: [TensorInfo], skipped: [Skipped]) {
        self.method = method
        self.tensors = tensors
        self.skipped = skipped
        self.counts = Array(repeating: nil, count: tensors.count)
    }

    /// Stores the counts of the `slot`-th pruned tensor.
    func record(_ slot: Int, _ c: PruneCounts) {
        lock.lock()
        counts[slot] = c
        lock.unlock()
    }

    /// The report, once every pruned tensor has been written.
    /// - Precondition: the plan's tensors have all been written.
    public var report: PruneReport {
        lock.lock()
        defer { lock.unlock() }
        let entries = zip(tensors, counts).map { info, c -> PruneReport.Entry in
            guard let c else { preconditionFailure("\(info.name) has not been written yet") }
            return PruneReport.Entry(name: info.name, type: info.type, shape: info.shape, counts: c)
        }
        return PruneReport(method: method, tensors: entries, skipped: skipped)
    }
}

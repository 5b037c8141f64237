import Foundation

/// What re-quantizing merged tensors of a quantized base costs: for each tensor written back to its ggml
/// block type, the error between the merged f32 values and their re-quantized form. Filled in while the
/// output is written.
public final class MergeRequantization: @unchecked Sendable {
    public struct Entry: Sendable {
        public var tensor: String
        /// The ggml type the tensor was dequantized from and re-quantized to.
        public var type: String
        public var error: QuantError
    }

    private let lock = NSLock()
    private var recorded: [Entry] = []

    /// The tensors re-quantized so far, in the order they were written.
    public var entries: [Entry] {
        lock.lock(); defer { lock.unlock() }
        return recorded
    }

    /// All re-quantized tensors as one: energies summed, the largest absolute error (nil when none).
    public var total: QuantError? {
        let all = entries
        guard let first = all.first?.error else { return nil }
        return all.dropFirst().reduce(first) { MergeRequantization.combine($0, $1.error) }
    }

    func record(_ tensor: String, type: GGMLType, error: QuantError) {
        lock.lock(); defer { lock.unlock() }
        recorded.append(Entry(tensor: tensor, type: type.name, error: error))
    }

    /// Two measurements as one (counts and energies added, maximum of the maxima).
    static func combine(_ a: QuantError, _ b: QuantError) -> QuantError {
        QuantError(count: a.count + b.count, signalEnergy: a.signalEnergy + b.signalEnergy,
                   errorEnergy: a.errorEnergy + b.errorEnergy, maxAbsError: max(a.maxAbsError, b.maxAbsError))
    }
}

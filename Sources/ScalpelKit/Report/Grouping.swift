import Foundation

/// How `inspect` groups tensors in its second table.
public enum Grouping: String, CaseIterable, Sendable {
    /// By element/block type.
    case dtype
    /// By the block index: `layers.N`, `layer.N`, `blk.N`, `h.N`, `blocks.N`; other tensors are "(other)".
    case layer
    /// By the last name part before `.weight`/`.bias` (and before `.lora_A`/`.lora_B` in adapters),
    /// e.g. `q_proj`.
    case module

    /// The group a tensor belongs to.
    public func key(for t: TensorInfo) -> String {
        switch self {
        case .dtype: return t.type.description
        case .layer: return Grouping.layerIndex(t.name).map { "layer \($0)" } ?? "(other)"
        case .module: return Grouping.moduleName(t.name)
        }
    }

    static let layerWords: Set<Substring> = ["layers", "layer", "blk", "h", "blocks", "block"]

    /// The block index in a tensor name, if any.
    public static func layerIndex(_ name: String) -> Int? {
        let parts = name.split(separator: ".")
        for (i, p) in parts.enumerated().dropLast() where layerWords.contains(p) {
            if let n = Int(parts[i + 1]) { return n }
        }
        return nil
    }

    /// Name parts that qualify a module's tensor rather than name the module: parameters, LoRA parts, and
    /// the side tensors of quantized layouts (bitsandbytes, compressed-tensors).
    static let suffixes: Set<Substring> = ["weight", "bias", "lora_A", "lora_B", "lora_a", "lora_b",
                                           "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector",
                                           "absmax", "quant_map", "nested_absmax", "nested_quant_map", "quant_state",
                                           "bitsandbytes__nf4", "bitsandbytes__fp4", "SCB", "weight_format",
                                           "weight_packed", "weight_scale", "weight_shape", "weight_zero_point"]

    /// The module part of a tensor name.
    public static func moduleName(_ name: String) -> String {
        var parts = name.split(separator: ".")
        while parts.count > 1, let last = parts.last, suffixes.contains(last) { parts.removeLast() }
        return parts.last.map(String.init) ?? name
    }
}

/// Totals of a set of tensors.
public struct TensorTotals: Sendable, Equatable {
    public var tensors = 0
    public var parameters = 0
    public var bytes = 0

    public mutating func add(_ t: TensorInfo) {
        tensors += 1
        parameters += t.elementCount
        bytes += t.byteCount
    }

    /// Tensors grouped by `key`, groups in order of first appearance.
    public static func grouped(_ tensors: [TensorInfo], by key: (TensorInfo) -> String) -> [(String, TensorTotals)] {
        var order: [String] = []
        var totals: [String: TensorTotals] = [:]
        for t in tensors {
            let k = key(t)
            if totals[k] == nil { order.append(k); totals[k] = TensorTotals() }
            totals[k]!.add(t)
        }
        return order.map { ($0, totals[$0]!) }
    }
}

/// Shell-style glob matching (`*`, `?`, `[...]`) as fnmatch(3) does, `*` crossing dots.
public func globMatches(_ pattern: String, _ name: String) -> Bool {
    fnmatch(pattern, name, 0) == 0
}

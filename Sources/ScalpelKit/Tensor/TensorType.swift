/// How a tensor's elements are stored: a plain element type, or a ggml block-quantized type.
///
/// GGUF files use ggml type ids for everything; the GGUF reader maps the plain ones (F32, F16, BF16,
/// I8...) to `.plain` so that the rest of Scalpel sees one vocabulary, and keeps `.block` for types that
/// pack several elements into a block with scales.
public enum TensorType: Sendable, Hashable, CustomStringConvertible {
    case plain(DType)
    case block(GGMLType)

    /// The display name: the safetensors dtype name or the ggml type name ("F32", "Q4_0").
    public var description: String {
        switch self {
        case .plain(let d): return d.rawValue
        case .block(let g): return g.name
        }
    }

    /// Bytes needed for `elementCount` elements, or nil when that is not a whole number of bytes/blocks
    /// or overflows.
    public func byteCount(elements: Int) -> Int? {
        switch self {
        case .plain(let d):
            let (bits, o) = elements.multipliedReportingOverflow(by: d.bitWidth)
            if o || bits % 8 != 0 { return nil }
            return bits / 8
        case .block(let g):
            guard elements % g.blockSize == 0 else { return nil }
            let (b, o) = (elements / g.blockSize).multipliedReportingOverflow(by: g.typeSize)
            return o ? nil : b
        }
    }

    /// The plain dtype, if this is one.
    public var dtype: DType? {
        if case .plain(let d) = self { return d }
        return nil
    }

    /// Parses a display name ("F16", "q8_0", "BF16").
    public init?(name: String) {
        if let d = DType(rawValue: name.uppercased()) { self = .plain(d); return }
        if let g = GGMLType(name: name) {
            if let d = g.plainDType { self = .plain(d) } else { self = .block(g) }
            return
        }
        return nil
    }
}

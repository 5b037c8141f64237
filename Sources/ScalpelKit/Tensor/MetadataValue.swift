/// A checkpoint metadata value. GGUF's typed values map one to one; safetensors' `__metadata__` holds
/// only strings.
public indirect enum MetadataValue: Sendable, Equatable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    /// A GGUF array: every element has the type of `elementType` (a GGUF value type id).
    case array(elementType: UInt32, [MetadataValue])
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)

    /// The value as JSON (integers exact, floats as doubles).
    public var json: JSONValue {
        switch self {
        case .uint8(let v): return .int(Int(v))
        case .int8(let v): return .int(Int(v))
        case .uint16(let v): return .int(Int(v))
        case .int16(let v): return .int(Int(v))
        case .uint32(let v): return .int(Int(v))
        case .int32(let v): return .int(Int(v))
        case .uint64(let v): return v <= UInt64(Int.max) ? .int(Int(v)) : .double(Double(v))
        case .int64(let v): return .int(Int(v))
        case .float32(let v): return .double(Double(v))
        case .float64(let v): return .double(v)
        case .bool(let v): return .bool(v)
        case .string(let v): return .string(v)
        case .array(_, let items): return .array(items.map(\.json))
        }
    }

    /// The value as one safetensors metadata string: strings as they are, anything else as its JSON text.
    public var metadataString: String {
        if case .string(let s) = self { return s }
        return JSONWriter.string(json, style: .compact)
    }

    /// The string, if this is one.
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }

    /// The value as an integer, for any integer type.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// The value as a float, for the float types.
    public var doubleValue: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return intValue.map(Double.init)
        }
    }
}

/// Ordered key/value metadata of a checkpoint. Keys are unique.
public struct Metadata: Sendable, Equatable {
    public private(set) var entries: [(key: String, value: MetadataValue)] = []

    public init(_ entries: [(String, MetadataValue)] = []) {
        for (k, v) in entries { self[k] = v }
    }

    /// Metadata from entries whose keys the caller has already checked to be unique (linear time, for
    /// readers of large headers).
    init(uniqueEntries entries: [(String, MetadataValue)]) {
        self.entries = entries.map { (key: $0.0, value: $0.1) }
    }

    public static func == (a: Metadata, b: Metadata) -> Bool {
        a.entries.count == b.entries.count && zip(a.entries, b.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    /// The value for a key; setting nil removes it, setting a new key appends it.
    public subscript(key: String) -> MetadataValue? {
        get { entries.first(where: { $0.key == key })?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key, newValue))
            }
        }
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var keys: [String] { entries.map(\.key) }

    /// The metadata as one JSON object in key order.
    public var json: JSONValue { .object(entries.map { ($0.key, $0.value.json) }) }
}

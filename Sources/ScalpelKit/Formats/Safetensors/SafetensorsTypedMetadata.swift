import Foundation

/// Typed metadata in safetensors' string-only `__metadata__`.
///
/// Safetensors metadata values are strings; GGUF's are typed (u8...u64, i8...i64, f32, f64, bool, str and
/// arrays of them). So that GGUF -> safetensors -> GGUF gives back the same keys, types and values:
/// - every value is written as readable text: a string as itself; an integer in decimal; a float in the
///   shortest text that reads back to the same bits (`nan`, `inf`, `-inf` for the specials); a bool as
///   `true`/`false`; an array as a JSON array (numbers as above, `"nan"`/`"inf"`/`"-inf"` and u64 values
///   above 2^63-1 as JSON strings, strings as JSON strings);
/// - one more key, `scalpel.metadata_types`, holds a compact JSON object mapping each key whose value is not
///   a plain string to its GGUF type name: `u8 i8 u16 i16 u32 i32 u64 i64 f32 f64 bool`, or `arr[T]` with
///   T one of those or `str`. It is written only when some value is not a string, so metadata of plain
///   strings stays exactly as it was.
///
/// On reading, the keys that `scalpel.metadata_types` names are parsed back to their types (a value that
/// does not parse as its type is an error) and the types key itself is dropped; files without it read as
/// strings, as before.
public enum SafetensorsTypedMetadata {
    /// The key holding the types.
    public static let typesKey = "scalpel.metadata_types"

    /// The string form of every entry, plus the types key when needed, in the metadata's order.
    public static func encode(_ metadata: Metadata) -> [(String, String)] {
        var out: [(String, String)] = []
        var types: [(String, JSONValue)] = []
        for (k, v) in metadata.entries where k != typesKey {
            out.append((k, text(v)))
            if let t = typeName(v) { types.append((k, .string(t))) }
        }
        if !types.isEmpty { out.append((typesKey, JSONWriter.string(.object(types), style: .compact))) }
        return out
    }

    /// Restores the types named by `scalpel.metadata_types` (and removes that key).
    /// - Throws: `ScalpelError.malformed` naming the key whose value does not parse as its type.
    public static func decode(_ metadata: Metadata, file: String) throws -> Metadata {
        guard let typesText = metadata[typesKey]?.stringValue else { return metadata }
        func bad(_ key: String, _ reason: String) -> ScalpelError {
            .malformed(file: file, tensor: nil, reason: "__metadata__ \(key): \(reason)")
        }
        guard let json = try? JSONParser.parse(typesText), let types = json.objectValue else {
            throw bad(typesKey, "is not a JSON object of type names")
        }
        var m = metadata
        m[typesKey] = nil
        for (key, typeValue) in types {
            guard let type = typeValue.stringValue else { throw bad(typesKey, "type of \(key) is not a string") }
            guard let s = m[key]?.stringValue else { throw bad(key, "is typed \(type) in \(typesKey) but missing") }
            if type.hasPrefix("arr["), type.hasSuffix("]") {
                let element = String(type.dropFirst(4).dropLast())
                guard let id = typeID(element) else { throw bad(key, "unknown array element type \(element)") }
                guard let items = (try? JSONParser.parse(s))?.arrayValue else { throw bad(key, "is not a JSON array") }
                var values: [MetadataValue] = []
                values.reserveCapacity(items.count)
                for item in items {
                    guard let v = element == "str" ? item.stringValue.map(MetadataValue.string) : scalar(item, element) else {
                        throw bad(key, "array element is not a \(element)")
                    }
                    values.append(v)
                }
                m[key] = .array(elementType: id, values)
            } else {
                guard type != "str", let v = scalar(s, type) else { throw bad(key, "'\(s.prefix(40))' is not a \(type)") }
                m[key] = v
            }
        }
        return m
    }

    // MARK: encoding

    static func typeName(_ v: MetadataValue) -> String? {
        switch v {
        case .string: return nil
        case .array(let id, _): return "arr[\(name(ofID: id))]"
        default: return name(ofID: v.ggufType.rawValue)
        }
    }

    private static let names: [UInt32: String] = [0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32",
                                                  7: "bool", 8: "str", 10: "u64", 11: "i64", 12: "f64"]

    static func name(ofID id: UInt32) -> String { names[id] ?? "?" }
    static func typeID(_ name: String) -> UInt32? { names.first(where: { $0.value == name })?.key }

    /// The text of a value (see the type's documentation).
    static func text(_ v: MetadataValue) -> String {
        switch v {
        case .string(let s): return s
        case .array(_, let items):
            return "[" + items.map { item -> String in
                switch item {
                case .string(let s): return JSONWriter.string(.string(s), style: .compact)
                case .float32(let f) where !f.isFinite: return "\"\(text(item))\""
                case .float64(let d) where !d.isFinite: return "\"\(text(item))\""
                case .uint64(let u) where u > UInt64(Int.max): return "\"\(u)\""
                default: return text(item)
                }
            }.joined(separator: ",") + "]"
        case .uint8(let x): return String(x)
        case .int8(let x): return String(x)
        case .uint16(let x): return String(x)
        case .int16(let x): return String(x)
        case .uint32(let x): return String(x)
        case .int32(let x): return String(x)
        case .uint64(let x): return String(x)
        case .int64(let x): return String(x)
        case .float32(let x): return x.isNaN ? "nan" : x.description
        case .float64(let x): return x.isNaN ? "nan" : x.description
        case .bool(let b): return b ? "true" : "false"
        }
    }

    // MARK: decoding

    /// A scalar from its text.
    static func scalar(_ s: String, _ type: String) -> MetadataValue? {
        switch type {
        case "u8": return UInt8(s).map { .uint8($0) }
        case "i8": return Int8(s).map { .int8($0) }
        case "u16": return UInt16(s).map { .uint16($0) }
        case "i16": return Int16(s).map { .int16($0) }
        case "u32": return UInt32(s).map { .uint32($0) }
        case "i32": return Int32(s).map { .int32($0) }
        case "u64": return UInt64(s).map { .uint64($0) }
        case "i64": return Int64(s).map { .int64($0) }
        case "f32": return Float(s).map { .float32($0) }
        case "f64": return Double(s).map { .float64($0) }
        case "bool": return s == "true" ? .bool(true) : s == "false" ? .bool(false) : nil
        default: return nil
        }
    }

    /// A scalar array element from its JSON value.
    static func scalar(_ j: JSONValue, _ type: String) -> MetadataValue? {
        switch j {
        case .int(let i): return scalar(String(i), type)
        case .double(let d):
            if type == "f32" || type == "f64" { return scalar(d.description, type) }
            if let u = UInt64(exactly: d) { return scalar(String(u), type) }
            return nil
        case .string(let s): return scalar(s, type)
        case .bool(let b) where type == "bool": return .bool(b)
        default: return nil
        }
    }
}

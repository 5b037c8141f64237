import Foundation

/// The type of a metadata value as `scalpel meta` names it: GGUF's value types (`u8` ... `u64`, `i8`
/// ... `i64`, `f32`, `f64`, `bool`, `string`) and `array[T]`. safetensors `__metadata__` holds strings only.
public indirect enum MetadataType: Sendable, Equatable, CustomStringConvertible {
    case u8, i8, u16, i16, u32, i32, u64, i64, f32, f64, bool, string
    case array(MetadataType)

    /// Parses "u32", "string", "array[i32]"... (case-insensitive; "uint32", "float32" also accepted).
    public init?(_ text: String) {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        if t.hasPrefix("array[") && t.hasSuffix("]") {
            guard let e = MetadataType(String(t.dropFirst(6).dropLast())), !e.isArray else { return nil }
            self = .array(e)
            return
        }
        let names: [String: MetadataType] = [
            "u8": .u8, "i8": .i8, "u16": .u16, "i16": .i16, "u32": .u32, "i32": .i32, "u64": .u64, "i64": .i64,
            "f32": .f32, "f64": .f64, "bool": .bool, "string": .string, "str": .string,
            "uint8": .u8, "int8": .i8, "uint16": .u16, "int16": .i16, "uint32": .u32, "int32": .i32,
            "uint64": .u64, "int64": .i64, "float32": .f32, "float64": .f64,
        ]
        guard let v = names[t] else { return nil }
        self = v
    }

    /// The type of a value (an empty array's element type is taken from its declared element type).
    public init(of value: MetadataValue) {
        switch value {
        case .uint8: self = .u8
        case .int8: self = .i8
        case .uint16: self = .u16
        case .int16: self = .i16
        case .uint32: self = .u32
        case .int32: self = .i32
        case .uint64: self = .u64
        case .int64: self = .i64
        case .float32: self = .f32
        case .float64: self = .f64
        case .bool: self = .bool
        case .string: self = .string
        case .array(let id, _): self = .array(MetadataType(ggufID: id) ?? .string)
        }
    }

    /// The scalar type with this GGUF value type id.
    init?(ggufID: UInt32) {
        let byID: [UInt32: MetadataType] = [0: .u8, 1: .i8, 2: .u16, 3: .i16, 4: .u32, 5: .i32, 6: .f32, 7: .bool,
                                            8: .string, 10: .u64, 11: .i64, 12: .f64]
        guard let t = byID[ggufID] else { return nil }
        self = t
    }

    /// GGUF's value type id.
    var ggufID: UInt32 {
        switch self {
        case .u8: return 0
        case .i8: return 1
        case .u16: return 2
        case .i16: return 3
        case .u32: return 4
        case .i32: return 5
        case .f32: return 6
        case .bool: return 7
        case .string: return 8
        case .array: return 9
        case .u64: return 10
        case .i64: return 11
        case .f64: return 12
        }
    }

    public var isArray: Bool { if case .array = self { return true }; return false }

    public var description: String {
        switch self {
        case .array(let e): return "array[\(e)]"
        case .u8: return "u8"
        case .i8: return "i8"
        case .u16: return "u16"
        case .i16: return "i16"
        case .u32: return "u32"
        case .i32: return "i32"
        case .u64: return "u64"
        case .i64: return "i64"
        case .f32: return "f32"
        case .f64: return "f64"
        case .bool: return "bool"
        case .string: return "string"
        }
    }

    /// Parses `text` as a value of this type: integers in range, floats, `true`/`false` (or 1/0), strings
    /// as they are, arrays as a JSON array of such values.
    /// - Throws: `ScalpelError.invalid` naming `key` and the reason when the text does not fit.
    public func parse(_ text: String, key: String, file: String?) throws -> MetadataValue {
        func bad(_ why: String) -> ScalpelError {
            .invalid(file: file, tensor: nil, reason: "metadata \"\(key)\": \(why)")
        }
        if case .array(let element) = self {
            guard let json = try? JSONParser.parse(text), let items = json.arrayValue else {
                throw bad("\(self) needs a JSON array value such as [1, 2, 3], not \(text.prefix(40).debugDescription)")
            }
            return .array(elementType: element.ggufID, try items.enumerated().map { i, item in
                let itemText: String
                switch item {
                case .string(let s): itemText = s
                case .int, .double, .bool: itemText = JSONWriter.string(item, style: .compact)
                default: throw bad("element \(i) of the array is not a \(element)")
                }
                if element == .string, item.stringValue == nil { throw bad("element \(i) is not a JSON string") }
                if element != .string, item.stringValue != nil { throw bad("element \(i) is a string, not a \(element)") }
                return try element.parse(itemText, key: key, file: file)
            })
        }
        let t = text.trimmingCharacters(in: .whitespaces)
        func int<T: FixedWidthInteger>(_: T.Type) throws -> T {
            guard let v = T(t) else { throw bad("\(t.debugDescription) is not a \(self) (\(T.min)...\(T.max))") }
            return v
        }
        switch self {
        case .u8: return .uint8(try int(UInt8.self))
        case .i8: return .int8(try int(Int8.self))
        case .u16: return .uint16(try int(UInt16.self))
        case .i16: return .int16(try int(Int16.self))
        case .u32: return .uint32(try int(UInt32.self))
        case .i32: return .int32(try int(Int32.self))
        case .u64: return .uint64(try int(UInt64.self))
        case .i64: return .int64(try int(Int64.self))
        case .f32, .f64:
            guard let d = Double(t) else { throw bad("\(t.debugDescription) is not a number") }
            return self == .f32 ? .float32(Float(d)) : .float64(d)
        case .bool:
            switch t.lowercased() {
            case "true", "1": return .bool(true)
            case "false", "0": return .bool(false)
            default: throw bad("\(t.debugDescription) is not a bool (true or false)")
            }
        case .string: return .string(text)
        case .array: preconditionFailure("handled above")
        }
    }

    /// The type a new GGUF key gets from its text: `true`/`false` bool, an integer i32 (i64 when it does
    /// not fit), a decimal number f32, a JSON array of such values (or of strings) an array, else string.
    public static func infer(_ text: String) -> MetadataType {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t == "true" || t == "false" { return .bool }
        if Int32(t) != nil { return .i32 }
        if Int64(t) != nil { return .i64 }
        if Double(t) != nil, t.contains(where: { ".eE".contains($0) }), !t.lowercased().contains("n") { return .f32 }
        if t.hasPrefix("["), let items = (try? JSONParser.parse(t))?.arrayValue, !items.isEmpty {
            if items.allSatisfy({ $0.stringValue != nil }) { return .array(.string) }
            if items.allSatisfy({ if case .bool = $0 { return true }; return false }) { return .array(.bool) }
            if items.allSatisfy({ if case .int(let v) = $0 { return Int32(exactly: v) != nil }; return false }) { return .array(.i32) }
            if items.allSatisfy({ if case .int = $0 { return true }; return false }) { return .array(.i64) }
            if items.allSatisfy({ switch $0 { case .int, .double: return true; default: return false } }) { return .array(.f32) }
        }
        return .string
    }
}

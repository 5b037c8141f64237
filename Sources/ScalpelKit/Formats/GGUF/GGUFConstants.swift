/// Fixed numbers of the GGUF container (version 3, little-endian), shared by the reader and the writer.
enum GGUFConstants {
    /// The first four bytes of every GGUF file: "GGUF".
    static let magic: [UInt8] = [0x47, 0x47, 0x55, 0x46]
    /// The version the writer produces.
    static let writeVersion: UInt32 = 3
    /// The versions the reader accepts (as gguf-py; ggml rejects 1 and anything above 3).
    static let readableVersions: ClosedRange<UInt32> = 2...3
    /// Tensor data alignment when `general.alignment` is absent.
    static let defaultAlignment = 32
    /// ggml's `GGML_MAX_NAME`: a tensor name must be shorter than this many bytes.
    static let maxNameBytes = 64
    /// ggml's `GGML_MAX_DIMS`.
    static let maxDims = 4

    /// Well-known metadata keys.
    enum Key {
        static let alignment = "general.alignment"
        static let architecture = "general.architecture"
        static let quantizationVersion = "general.quantization_version"
        static let fileType = "general.file_type"
    }
}

/// The type id of a GGUF metadata value, as stored before the value (and before array elements).
enum GGUFValueType: UInt32, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Bytes of one value of a fixed-size type; nil for strings and arrays.
    var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }

    /// The fewest bytes a value of this type can take (a string needs its 8-byte length, an array its
    /// 4-byte element type and 8-byte count). Used to bound counts before allocating.
    var minimumSize: Int {
        switch self {
        case .string: return 8
        case .array: return 12
        default: return fixedSize!
        }
    }

    /// GGUF's name for the type ("UINT32").
    var name: String { String(describing: self).uppercased() }
}

extension MetadataValue {
    /// The GGUF value type this value is stored as.
    var ggufType: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .float32: return .float32
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        case .uint64: return .uint64
        case .int64: return .int64
        case .float64: return .float64
        }
    }
}

/// Writes GGUF version 3 files (little-endian) that ggml, llama.cpp and gguf-py read.
enum GGUFWriter {
    /// Lays out `tensors` and `metadata` as a GGUF file named `file` (for messages).
    ///
    /// Layout, as gguf-py's `GGUFWriter` produces it: header, metadata in the given order, tensor infos in
    /// the given order (shapes reversed into ggml's `ne` order), zeros up to `alignment`, then each
    /// tensor's data in the same order, each padded with zeros to `alignment` (the last one too).
    /// `general.alignment` is written when `alignment` is not 32; metadata may already hold it, as a UINT32
    /// equal to `alignment`, and then it stays where it is.
    ///
    /// - Parameters:
    ///   - alignment: tensor data alignment, a power of two that fits in 32 bits.
    /// - Throws: `ScalpelError.invalid` for a type GGUF cannot hold (U8, BOOL, F8..., naming the tensor),
    ///   a shape that does not fit its type, more than 4 dimensions, an innermost dimension that is not a
    ///   multiple of the block size, a name of 64 bytes or more, a duplicate name, an array whose elements
    ///   do not match its element type (or are arrays), a bad alignment or one that disagrees with
    ///   metadata.
    static func layout(_ tensors: [OutputTensor], metadata: Metadata, alignment: Int = 32, file: String) throws -> FileLayout {
        func invalid(_ reason: String, tensor: String? = nil) -> ScalpelError {
            .invalid(file: file, tensor: tensor, reason: reason)
        }
        guard alignment > 0, alignment & (alignment - 1) == 0, alignment <= Int(UInt32.max) else {
            throw invalid("GGUF alignment \(alignment) is not a power of two that fits in 32 bits")
        }
        var keyValues = metadata
        if let stored = metadata[GGUFConstants.Key.alignment] {
            guard stored == .uint32(UInt32(alignment)) else {
                throw invalid("metadata \(GGUFConstants.Key.alignment) = \(stored.metadataString) (\(stored.ggufType.name)) disagrees with the alignment \(alignment) being written")
            }
        } else if alignment != GGUFConstants.defaultAlignment {
            keyValues[GGUFConstants.Key.alignment] = .uint32(UInt32(alignment))
        }

        var header = GGUFEncoder()
        header.bytes.append(contentsOf: GGUFConstants.magic)
        header.append(GGUFConstants.writeVersion)
        header.append(UInt64(tensors.count))
        header.append(UInt64(keyValues.entries.count))
        for (key, value) in keyValues.entries {
            header.append(key)
            header.append(value.ggufType.rawValue)
            try header.append(value, key: key, file: file)
        }

        var names = Set<String>()
        var offset = 0
        for t in tensors {
            let ggml = try ggmlType(of: t, file: file)
            guard names.insert(t.name).inserted else { throw invalid("duplicate tensor name", tensor: t.name) }
            header.append(t.name)
            header.append(UInt32(t.shape.count))
            for d in t.shape.reversed() { header.append(UInt64(d)) }
            header.append(ggml.id)
            header.append(UInt64(offset))
            guard let next = padded(offset + t.byteCount, to: alignment) else {
                throw invalid("tensor data overflows the addressable range", tensor: t.name)
            }
            offset = next
        }
        header.bytes.append(contentsOf: repeatElement(0, count: padded(header.bytes.count, to: alignment)! - header.bytes.count))
        return FileLayout(header: header.bytes, items: tensors.map { ($0, padded($0.byteCount, to: alignment)! - $0.byteCount) })
    }

    /// The key/value section of a header: each key, its value type and its value, in order (the bytes
    /// `layout` writes for them).
    static func keyValueBytes(_ metadata: Metadata, file: String) throws -> [UInt8] {
        var kv = GGUFEncoder()
        for (key, value) in metadata.entries {
            kv.append(key)
            kv.append(value.ggufType.rawValue)
            try kv.append(value, key: key, file: file)
        }
        return kv.bytes
    }

    /// The ggml type a tensor is stored as, after checking that GGUF and ggml accept its name and shape.
    private static func ggmlType(of t: OutputTensor, file: String) throws -> GGMLType {
        func invalid(_ reason: String) -> ScalpelError { .invalid(file: file, tensor: t.name, reason: reason) }
        try t.validate(file: file)
        let ggml: GGMLType
        switch t.type {
        case .plain(let d):
            guard let g = GGMLType(plain: d) else {
                throw invalid("type \(d.rawValue) cannot be stored in GGUF (it holds F32, F16, BF16, F64, I8, I16, I32, I64 and ggml block types)")
            }
            ggml = g
        case .block(let g):
            ggml = g
        }
        guard t.name.utf8.count < GGUFConstants.maxNameBytes else {
            throw invalid("name is \(t.name.utf8.count) bytes; GGUF (ggml) allows at most \(GGUFConstants.maxNameBytes - 1)")
        }
        guard t.shape.count <= GGUFConstants.maxDims else {
            throw invalid("has \(t.shape.count) dimensions; GGUF (ggml) allows at most \(GGUFConstants.maxDims)")
        }
        let innermost = t.shape.last ?? 1
        guard innermost % ggml.blockSize == 0 else {
            throw invalid("innermost dimension \(innermost) is not a multiple of the \(ggml.name) block size \(ggml.blockSize)")
        }
        return ggml
    }

    /// `value` rounded up to a multiple of `alignment` (a power of two), or nil on overflow.
    private static func padded(_ value: Int, to alignment: Int) -> Int? {
        let (sum, overflow) = value.addingReportingOverflow(alignment - 1)
        return overflow ? nil : sum & ~(alignment - 1)
    }
}

/// Appends GGUF's little-endian encodings of integers, strings and metadata values to a byte array.
private struct GGUFEncoder {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// A string: u64 byte length, then the UTF-8 bytes.
    mutating func append(_ s: String) {
        append(UInt64(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }

    /// A value without its type id (arrays: element type, count, elements).
    mutating func append(_ value: MetadataValue, key: String, file: String) throws {
        switch value {
        case .uint8(let v): append(v)
        case .int8(let v): append(v)
        case .uint16(let v): append(v)
        case .int16(let v): append(v)
        case .uint32(let v): append(v)
        case .int32(let v): append(v)
        case .float32(let v): append(v.bitPattern)
        case .bool(let v): append(UInt8(v ? 1 : 0))
        case .string(let v): append(v)
        case .uint64(let v): append(v)
        case .int64(let v): append(v)
        case .float64(let v): append(v.bitPattern)
        case .array(let rawElementType, let items):
            guard let elementType = GGUFValueType(rawValue: rawElementType), elementType != .array else {
                throw ScalpelError.invalid(file: file, tensor: nil, reason: "metadata \"\(key)\" has array element type \(rawElementType), which GGUF cannot store")
            }
            append(rawElementType)
            append(UInt64(items.count))
            for (i, item) in items.enumerated() {
                guard item.ggufType == elementType else {
                    throw ScalpelError.invalid(file: file, tensor: nil, reason: "metadata \"\(key)\" element \(i) is \(item.ggufType.name) in an array of \(elementType.name)")
                }
                try append(item, key: key, file: file)
            }
        }
    }
}

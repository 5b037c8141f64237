/// Reads GGUF headers (versions 2 and 3, little-endian): metadata, tensor descriptions, data layout.
///
/// Validation follows ggml's `gguf_init_from_file` and gguf-py's `GGUFReader`, and rejects what they
/// reject: a bad magic, version 1 or above 3, duplicate metadata keys, arrays of arrays, unknown value or
/// tensor types, `general.alignment` that is not a UINT32 power of two, duplicate tensor names, names of
/// 64 bytes or more, more than 4 dimensions, `ne[0]` not a multiple of the block size, and tensor offsets
/// other than the running sum of sizes padded to the alignment (in tensor-info order). Stricter than
/// both: strings must be valid UTF-8 and booleans 0 or 1 (so that every value round-trips exactly).
/// Like llama.cpp, the file may end right after the last tensor's data (its padding may be missing).
///
/// Every count is checked against the bytes that remain before anything is allocated from it.
enum GGUFReader {
    /// The fewest bytes of one tensor info: name length, n_dims, type, offset.
    private static let minimumTensorInfoBytes = 8 + 4 + 4 + 8
    /// The fewest bytes of one key/value: key length, value type, a one-byte value.
    private static let minimumKeyValueBytes = 8 + 4 + 1

    /// True when `bytes` starts with the GGUF magic.
    static func hasMagic(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && zip(bytes.prefix(4), GGUFConstants.magic).allSatisfy { $0 == $1 }
    }

    /// Parses and validates the header in `bytes`.
    ///
    /// - Parameters:
    ///   - fileLength: the length of the whole (decompressed) file, or nil when `bytes` is only a prefix of
    ///     it; then a header continuing past the prefix throws `NeedMoreBytes` and the check that tensor
    ///     data lies within the file is skipped.
    /// - Returns: tensors in file order with row-major shapes (ggml's `ne` reversed) and offsets relative to
    ///   the data section; metadata in file order with GGUF's exact types; the alignment; and the absolute
    ///   offset of the data section.
    /// - Throws: `ScalpelError.malformed` naming what is wrong (and the tensor, where there is one).
    static func parse(_ bytes: UnsafeRawBufferPointer, fileLength: Int?, file: String) throws -> (tensors: [TensorInfo], metadata: Metadata, alignment: Int, dataStart: Int) {
        var c = GGUFCursor(bytes, isPrefix: fileLength == nil, file: file)
        func bad(_ reason: String, tensor: String? = nil) -> ScalpelError {
            .malformed(file: file, tensor: tensor, reason: reason)
        }

        try c.need(4, for: "the GGUF magic")
        guard hasMagic(bytes) else { throw bad("not a GGUF file (the first 4 bytes are not \"GGUF\")") }
        c.seek(to: 4)
        let version = try c.u32("the GGUF version")
        guard GGUFConstants.readableVersions.contains(version) else {
            if GGUFConstants.readableVersions.contains(version.byteSwapped) { throw bad("big-endian GGUF files are not supported") }
            if version == 1 { throw bad("GGUF version 1 is no longer supported (versions 2 and 3 are)") }
            throw bad("unsupported GGUF version \(version) (versions 2 and 3 are supported)")
        }
        let rawTensorCount = try c.u64("the tensor count")
        let rawKeyValueCount = try c.u64("the metadata count")
        let keyValueCount = try c.needCount(rawKeyValueCount, minimumSize: minimumKeyValueBytes, for: "metadata key/value")

        var seenKeys = Set<String>()
        var entries: [(String, MetadataValue)] = []
        entries.reserveCapacity(keyValueCount)
        for i in 0..<keyValueCount {
            let key = try c.string("metadata key #\(i)")
            guard seenKeys.insert(key).inserted else { throw bad("duplicate metadata key \"\(key)\"") }
            let rawType = try c.u32("the value type of metadata \"\(key)\"")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw bad("metadata \"\(key)\" has unknown value type \(rawType)")
            }
            entries.append((key, try readValue(type, &c, what: "metadata \"\(key)\"")))
        }
        let metadata = Metadata(uniqueEntries: entries)
        let alignment = try readAlignment(metadata, file: file)

        let tensorCount = try c.needCount(rawTensorCount, minimumSize: minimumTensorInfoBytes, for: "tensor info")
        var seenNames = Set<String>()
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(tensorCount)
        var expectedOffset = 0, totalElements = 0
        for i in 0..<tensorCount {
            let t = try readTensorInfo(&c, index: i, file: file)
            guard seenNames.insert(t.name).inserted else { throw bad("duplicate tensor name", tensor: t.name) }
            guard t.offset == expectedOffset else {
                throw bad("data offset \(t.offset), expected \(expectedOffset) (each tensor must follow the previous one, padded to \(alignment) bytes)", tensor: t.name)
            }
            guard let next = padded(t.offset + t.byteCount, to: alignment) else {
                throw bad("tensor data overflows the addressable range", tensor: t.name)
            }
            let (sum, overflow) = totalElements.addingReportingOverflow(t.elementCount)
            guard !overflow else { throw bad("element counts add up past \(Int.max)", tensor: t.name) }
            totalElements = sum
            expectedOffset = next
            tensors.append(t)
        }

        guard let dataStart = padded(c.offset, to: alignment) else { throw bad("data section overflows") }
        if let fileLength {
            for t in tensors {
                let (end, overflow) = dataStart.addingReportingOverflow(t.offset + t.byteCount)
                guard !overflow, end <= fileLength else {
                    throw bad("data runs past the end of the file (ends at byte \(overflow ? "beyond \(Int.max)" : String(end)), file has \(fileLength) bytes)", tensor: t.name)
                }
            }
        }
        return (tensors, metadata, alignment, dataStart)
    }

    /// `value` rounded up to a multiple of `alignment` (a power of two), or nil on overflow.
    private static func padded(_ value: Int, to alignment: Int) -> Int? {
        let (sum, overflow) = value.addingReportingOverflow(alignment - 1)
        return overflow ? nil : sum & ~(alignment - 1)
    }

    /// `general.alignment`: a UINT32 power of two, default 32.
    private static func readAlignment(_ metadata: Metadata, file: String) throws -> Int {
        guard let value = metadata[GGUFConstants.Key.alignment] else { return GGUFConstants.defaultAlignment }
        guard case .uint32(let a) = value else {
            throw ScalpelError.malformed(file: file, tensor: nil, reason: "\(GGUFConstants.Key.alignment) must be UINT32, found \(value.ggufType.name)")
        }
        guard a != 0, a & (a - 1) == 0 else {
            throw ScalpelError.malformed(file: file, tensor: nil, reason: "\(GGUFConstants.Key.alignment) \(a) is not a power of two")
        }
        return Int(a)
    }

    /// Reads one value of `type` (an array's elements recursively, one level deep).
    private static func readValue(_ type: GGUFValueType, _ c: inout GGUFCursor, what: @autoclosure () -> String) throws -> MetadataValue {
        switch type {
        case .uint8: return .uint8(try c.u8(what()))
        case .int8: return .int8(Int8(bitPattern: try c.u8(what())))
        case .uint16: return .uint16(try c.u16(what()))
        case .int16: return .int16(Int16(bitPattern: try c.u16(what())))
        case .uint32: return .uint32(try c.u32(what()))
        case .int32: return .int32(Int32(bitPattern: try c.u32(what())))
        case .float32: return .float32(Float(bitPattern: try c.u32(what())))
        case .uint64: return .uint64(try c.u64(what()))
        case .int64: return .int64(Int64(bitPattern: try c.u64(what())))
        case .float64: return .float64(Double(bitPattern: try c.u64(what())))
        case .bool:
            let b = try c.u8(what())
            guard b <= 1 else {
                throw ScalpelError.malformed(file: c.file, tensor: nil, reason: "\(what()) is a BOOL with byte value \(b) (must be 0 or 1)")
            }
            return .bool(b == 1)
        case .string: return .string(try c.string(what()))
        case .array:
            let rawElementType = try c.u32("the element type of \(what())")
            guard let elementType = GGUFValueType(rawValue: rawElementType) else {
                throw ScalpelError.malformed(file: c.file, tensor: nil, reason: "\(what()) is an array of unknown value type \(rawElementType)")
            }
            guard elementType != .array else {
                throw ScalpelError.malformed(file: c.file, tensor: nil, reason: "\(what()) is an array of arrays, which ggml does not accept")
            }
            let rawCount = try c.u64("the element count of \(what())")
            let count = try c.needCount(rawCount, minimumSize: elementType.minimumSize, for: "\(what()) array element")
            var items: [MetadataValue] = []
            items.reserveCapacity(count)
            for i in 0..<count {
                items.append(try readValue(elementType, &c, what: "\(what()) element \(i)"))
            }
            return .array(elementType: rawElementType, items)
        }
    }

    /// Reads and checks one tensor info; the offset is not yet checked against the layout.
    private static func readTensorInfo(_ c: inout GGUFCursor, index: Int, file: String) throws -> TensorInfo {
        let name = try c.string("the name of tensor #\(index)")
        func bad(_ reason: String) -> ScalpelError { .malformed(file: file, tensor: name, reason: reason) }
        guard name.utf8.count < GGUFConstants.maxNameBytes else {
            throw bad("name is \(name.utf8.count) bytes; ggml allows at most \(GGUFConstants.maxNameBytes - 1)")
        }
        let nDims = try c.u32("the dimension count", tensor: name)
        guard nDims <= GGUFConstants.maxDims else {
            throw bad("has \(nDims) dimensions; ggml allows at most \(GGUFConstants.maxDims)")
        }
        var ne: [Int] = []
        for j in 0..<Int(nDims) {
            let d = try c.u64("dimension \(j)", tensor: name)
            guard d <= UInt64(Int64.max) else { throw bad("dimension \(j) is \(d), out of range") }
            ne.append(Int(d))
        }
        let typeID = try c.u32("the ggml type", tensor: name)
        guard let ggml = GGMLType(id: typeID) else { throw bad("unknown ggml type id \(typeID)") }
        let rawOffset = try c.u64("the data offset", tensor: name)
        guard rawOffset <= UInt64(Int.max) else { throw bad("data offset \(rawOffset) is out of range") }

        let shape = Array(ne.reversed())
        let innermost = ne.first ?? 1
        guard innermost % ggml.blockSize == 0 else {
            throw bad("innermost dimension \(innermost) is not a multiple of the \(ggml.name) block size \(ggml.blockSize)")
        }
        let type: TensorType = ggml.plainDType.map { .plain($0) } ?? .block(ggml)
        guard let elements = shape.checkedProduct(), let byteCount = type.byteCount(elements: elements),
              byteCount <= Int.max - Int(rawOffset)
        else { throw bad("shape \(shape) of \(ggml.name) overflows") }
        return TensorInfo(name: name, type: type, shape: shape, offset: Int(rawOffset), byteCount: byteCount)
    }
}

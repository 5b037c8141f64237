/// Parsing and building the JSON header of a safetensors file. Nothing else knows its layout.
enum SafetensorsHeader {
    /// The reference implementation's cap on the header length.
    static let maxHeaderBytes = 100_000_000

    /// Reads the header length (u64 LE) from the first 8 bytes.
    static func headerLength(_ bytes: UnsafeRawBufferPointer, file: String) throws -> Int {
        guard bytes.count >= 8 else {
            throw ScalpelError.malformed(file: file, tensor: nil, reason: "file is \(bytes.count) bytes, shorter than the 8-byte header length")
        }
        let n = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        // The value is not printed: for a file that is not a safetensors file at all, it is the file's
        // first 8 bytes, which an error must not reveal.
        guard n <= UInt64(maxHeaderBytes) else {
            throw ScalpelError.malformed(file: file, tensor: nil, reason: "the 8-byte header length exceeds the 100,000,000-byte limit (not a safetensors file?)")
        }
        return Int(n)
    }

    /// Parses and validates a header. `bytes` must hold at least the 8-byte length and the header;
    /// `fileLength` is the full length of the (decompressed) file, or nil when unknown (then the
    /// coverage check is skipped).
    ///
    /// Checks, as the reference reader does: UTF-8 JSON object; `__metadata__` a map of strings; each
    /// tensor's dtype known, shape non-negative, byte size = elements x dtype bits / 8 without overflow;
    /// data offsets contiguous from 0 with no holes or overlaps; the data ending exactly at the end of
    /// the file. Stricter than the reference: duplicate keys are rejected.
    static func parse(_ bytes: UnsafeRawBufferPointer, fileLength: Int?, file: String) throws -> (tensors: [TensorInfo], metadata: Metadata, dataStart: Int) {
        let n = try headerLength(bytes, file: file)
        if let fileLength, 8 + n > fileLength {
            throw ScalpelError.malformed(file: file, tensor: nil, reason: "the header length runs past the end of the file (\(fileLength) bytes)")
        }
        guard 8 + n <= bytes.count else {
            throw ScalpelError.malformed(file: file, tensor: nil, reason: "file is truncated inside the \(n)-byte header")
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + n)]))
        } catch let e as JSONParser.Failure {
            throw ScalpelError.malformed(file: file, tensor: nil, reason: "header is not valid JSON: \(e.message) at byte \(8 + e.offset)")
        }
        guard case .object(let pairs) = json else {
            throw ScalpelError.malformed(file: file, tensor: nil, reason: "header is not a JSON object")
        }
        var metadata = Metadata()
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(pairs.count)
        for (name, value) in pairs {
            if name == "__metadata__" {
                guard case .object(let m) = value else {
                    throw ScalpelError.malformed(file: file, tensor: nil, reason: "__metadata__ is not an object")
                }
                for (k, v) in m {
                    guard case .string(let s) = v else {
                        throw ScalpelError.malformed(file: file, tensor: nil, reason: "__metadata__ value for \"\(k)\" is not a string")
                    }
                    metadata[k] = .string(s)
                }
                metadata = try SafetensorsTypedMetadata.decode(metadata, file: file)
                continue
            }
            tensors.append(try tensorInfo(name: name, value, file: file))
        }
        // Contiguity, in offset order.
        let sorted = tensors.sorted { ($0.offset, $0.offset + $0.byteCount) < ($1.offset, $1.offset + $1.byteCount) }
        var expected = 0, elements = 0
        for t in sorted {
            guard t.offset == expected else {
                let what = t.offset < expected ? "overlaps the previous tensor" : "leaves a hole"
                throw ScalpelError.malformed(file: file, tensor: t.name, reason: "data_offsets begin at \(t.offset), expected \(expected): \(what)")
            }
            let (next, o1) = expected.addingReportingOverflow(t.byteCount)
            let (count, o2) = elements.addingReportingOverflow(t.elementCount)
            guard !o1, !o2, next <= Int.max - 8 - n else {
                throw ScalpelError.malformed(file: file, tensor: t.name, reason: "tensor sizes add up past the addressable range (\(Int.max) bytes or elements)")
            }
            expected = next
            elements = count
        }
        if let fileLength, 8 + n + expected != fileLength {
            throw ScalpelError.malformed(file: file, tensor: nil, reason: "tensor data ends at byte \(8 + n + expected) but the file has \(fileLength) bytes")
        }
        return (tensors, metadata, 8 + n)
    }

    private static func tensorInfo(name: String, _ value: JSONValue, file: String) throws -> TensorInfo {
        func bad(_ r: String) -> ScalpelError { .malformed(file: file, tensor: name, reason: r) }
        guard case .object = value else { throw bad("entry is not an object") }
        guard let dtypeName = value["dtype"]?.stringValue else { throw bad("missing dtype") }
        guard let dtype = DType(rawValue: dtypeName) else { throw bad("unknown dtype \"\(dtypeName)\"") }
        guard let dims = value["shape"]?.arrayValue else { throw bad("missing shape") }
        var shape: [Int] = []
        for d in dims {
            guard case .int(let v) = d, v >= 0 else { throw bad("shape has a dimension that is not a non-negative integer") }
            shape.append(v)
        }
        guard let offs = value["data_offsets"]?.arrayValue, offs.count == 2,
              case .int(let begin) = offs[0], case .int(let end) = offs[1], begin >= 0, end >= 0
        else { throw bad("data_offsets is not two non-negative integers") }
        guard end >= begin else { throw bad("data_offsets end \(end) is before begin \(begin)") }
        guard let elements = shape.checkedProduct() else { throw bad("shape \(shape) overflows") }
        guard let size = TensorType.plain(dtype).byteCount(elements: elements) else {
            throw bad("shape \(shape) of \(dtypeName) is not a whole number of bytes or overflows")
        }
        guard end - begin == size else {
            throw bad("data_offsets span \(end - begin) bytes but shape \(shape) of \(dtypeName) needs \(size)")
        }
        return TensorInfo(name: name, type: .plain(dtype), shape: shape, offset: begin, byteCount: size)
    }

    /// Lays out tensors as the reference writer does (largest dtype first, then by name), assigns their
    /// offsets, and returns the header bytes padded with spaces so the data starts 8-byte aligned.
    static func build(_ tensors: [TensorInfo], metadata: Metadata) -> (header: [UInt8], ordered: [TensorInfo]) {
        let ordered = order(tensors)
        var pairs: [(String, JSONValue)] = []
        if !metadata.isEmpty {
            pairs.append(("__metadata__", .object(SafetensorsTypedMetadata.encode(metadata).map { ($0.0, .string($0.1)) })))
        }
        var laid: [TensorInfo] = []
        var offset = 0
        for var t in ordered {
            t.offset = offset
            offset += t.byteCount
            laid.append(t)
            pairs.append((t.name, .object([
                ("dtype", .string(t.type.description)),
                ("shape", .array(t.shape.map { .int($0) })),
                ("data_offsets", .array([.int(t.offset), .int(t.offset + t.byteCount)])),
            ])))
        }
        var header = Array(JSONWriter.string(.object(pairs), style: .compact).utf8)
        while (8 + header.count) % 8 != 0 { header.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + header.count)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        return (out, laid)
    }

    /// The reference writer's order: dtype (larger first, by the spec's enum order), then name.
    static func order(_ tensors: [TensorInfo]) -> [TensorInfo] {
        tensors.sorted { a, b in
            let ra = a.type.dtype?.writerRank ?? 0, rb = b.type.dtype?.writerRank ?? 0
            return ra != rb ? ra > rb : a.name < b.name
        }
    }
}

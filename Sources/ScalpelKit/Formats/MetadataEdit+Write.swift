import Foundation

extension MetadataEdit {
    /// The plan writing `checkpoint` with `metadata` to `destination` by streamed copy of every tensor,
    /// through the one write path (the format's own writer). GGUF keeps its alignment, or takes a new
    /// `general.alignment`.
    /// - Throws: `ScalpelError.invalid` when the destination's format is not the input's (meta edits,
    ///   convert converts) or the input is not one safetensors or GGUF file; writer errors.
    public static func plan(_ checkpoint: Checkpoint, metadata: Metadata, to destination: Destination) throws -> Plan {
        let same: Bool
        switch (checkpoint.format, destination.kind) {
        case (.safetensors, .safetensors), (.gguf, .gguf): same = true
        default: same = false
        }
        guard same else {
            throw ScalpelError.invalid(file: destination.path, tensor: nil,
                                       reason: "meta writes the input's format (\(checkpoint.format.rawValue)); use convert to change formats")
        }
        let tensors = try checkpoint.tensors.indices.map { i in
            OutputTensor(copying: try checkpoint.view(at: i), onWritten: { checkpoint.release(checkpoint.tensors[i].name) })
        }
        let alignment = metadata[GGUFConstants.Key.alignment]?.intValue ?? checkpoint.alignment ?? GGUFConstants.defaultAlignment
        var plan = Plan(destination: destination, tensors: tensors, metadata: metadata, ggufAlignment: alignment, inputs: [checkpoint.path])
        let text = "\(metadata.entries.count) metadata keys (was \(checkpoint.metadata.entries.count)), \(tensors.count) tensors copied"
        plan.report = { _ in Report(text: text, fields: [("metadata_keys", .int(metadata.entries.count))]) }
        return plan
    }

    /// Rewrites the header of `checkpoint`'s file in place with `metadata`, when the new header fits
    /// exactly where the old one was: the same safetensors header length (the JSON is padded with spaces,
    /// as the reference writer pads it), or for GGUF the same start of tensor data (the key/values and
    /// tensor infos, padded with zeros to the alignment). Tensor data is not touched.
    /// - Returns: the number of header bytes rewritten.
    /// - Throws: `ScalpelError.invalid`, before writing anything, when the header would change size (saying
    ///   by how much), the input is compressed or not a single file, or the alignment would change.
    @discardableResult
    public static func writeInPlace(_ checkpoint: Checkpoint, metadata: Metadata) throws -> Int {
        let path = checkpoint.path
        func refuse(_ why: String) -> ScalpelError { .invalid(file: path, tensor: nil, reason: "cannot edit in place: \(why)") }
        guard !checkpoint.compressed else { throw refuse("the file is zstd-compressed (use -o OUT)") }
        guard let file = checkpoint.files.first, checkpoint.files.count == 1 else {
            throw refuse("\(checkpoint.format.rawValue) is not a single file (use -o OUT)")
        }
        let bytes = file.bytes
        let header: [UInt8]
        switch checkpoint.format {
        case .safetensors:
            let n = try SafetensorsHeader.headerLength(bytes, file: path)
            guard var json = try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + n)])),
                  case .object(var pairs) = json else {
                throw ScalpelError.malformed(file: path, tensor: nil, reason: "header is not a JSON object")
            }
            pairs.removeAll { $0.0 == "__metadata__" }
            if !metadata.isEmpty {
                pairs.insert(("__metadata__", .object(metadata.entries.map { ($0.key, .string($0.value.metadataString)) })), at: 0)
            }
            json = .object(pairs)
            var text = Array(JSONWriter.string(json, style: .compact).utf8)
            guard text.count <= n else {
                throw refuse("the new header is \(text.count) bytes and the old one \(n); it would grow by \(text.count - n) bytes (use -o OUT)")
            }
            text += repeatElement(0x20, count: n - text.count)
            header = text
            try write(header, into: path, at: 8, replacing: UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + n)]))
        case .gguf:
            let alignment = checkpoint.alignment ?? GGUFConstants.defaultAlignment
            if metadata[GGUFConstants.Key.alignment]?.intValue ?? GGUFConstants.defaultAlignment != alignment {
                throw refuse("general.alignment would change from \(alignment) (use -o OUT)")
            }
            let oldKV = try GGUFWriter.keyValueBytes(checkpoint.metadata, file: path)
            guard bytes.count >= 24 + oldKV.count, bytes[24..<(24 + oldKV.count)].elementsEqual(oldKV) else {
                throw refuse("the file's key/values are not laid out as Scalpel would write them (use -o OUT)")
            }
            let infoBytes = checkpoint.tensors.reduce(0) { $0 + 8 + $1.name.utf8.count + 4 + 8 * $1.shape.count + 4 + 8 }
            let oldEnd = 24 + oldKV.count + infoBytes
            let dataStart = (oldEnd + alignment - 1) / alignment * alignment
            if let first = checkpoint.locations.first, first.start - checkpoint.tensors[0].offset != dataStart {
                throw refuse("the tensor data does not start where the header says (use -o OUT)")
            }
            let newKV = try GGUFWriter.keyValueBytes(metadata, file: path)
            let newEnd = 24 + newKV.count + infoBytes
            guard newEnd <= dataStart && newEnd > dataStart - alignment else {
                let grow = newEnd > dataStart
                throw refuse("the header's key/values change from \(oldKV.count) to \(newKV.count) bytes, which "
                             + (grow ? "overflows the \(dataStart - oldEnd) bytes of padding before the tensor data"
                                     : "moves the start of tensor data (padding to \(alignment) bytes)")
                             + " (use -o OUT)")
            }
            var h = Array(bytes[0..<16])
            withUnsafeBytes(of: UInt64(metadata.entries.count).littleEndian) { h.append(contentsOf: $0) }
            h += newKV
            h += bytes[(24 + oldKV.count)..<oldEnd]
            h += repeatElement(0, count: dataStart - newEnd)
            header = h
            try write(header, into: path, at: 0, replacing: UnsafeRawBufferPointer(rebasing: bytes[0..<dataStart]))
        default:
            throw refuse("\(checkpoint.format.rawValue) is not a single safetensors or GGUF file (use -o OUT)")
        }
        return header.count
    }

    /// Overwrites `old.count` bytes at `offset` with `new` (same length), skipping the write when equal.
    private static func write(_ new: [UInt8], into path: String, at offset: Int, replacing old: UnsafeRawBufferPointer) throws {
        precondition(new.count == old.count)
        if new.elementsEqual(old) { return }
        guard let handle = FileHandle(forUpdatingAtPath: path) else {
            throw ScalpelError.io(file: path, reason: "cannot open for writing")
        }
        defer { try? handle.close() }
        do {
            try handle.seek(toOffset: UInt64(offset))
            try handle.write(contentsOf: Data(new))
            try handle.synchronize()
        } catch {
            throw ScalpelError.io(file: path, reason: "writing the header failed: \(error.localizedDescription)")
        }
    }
}

/// Recognizes common files that are not checkpoints Scalpel reads, so the error says what the file is
/// instead of reporting its first bytes as an impossible safetensors header length.
enum ForeignFile {
    /// What `bytes` look like ("a JSON file", "a zip archive (a PyTorch checkpoint?)"...), or nil when
    /// they could be a safetensors header.
    static func kind(_ bytes: UnsafeRawBufferPointer) -> String? {
        guard bytes.count >= 2 else { return nil }
        let b0 = bytes[0], b1 = bytes[1]
        if b0 == 0x50 && b1 == 0x4B { return "a zip archive (a PyTorch torch.save checkpoint?)" }
        if b0 == 0x80 && (2...5).contains(b1) { return "a Python pickle (a legacy PyTorch checkpoint?)" }
        if b0 == 0x1F && b1 == 0x8B { return "a gzip file" }
        if b0 == 0x89 && b1 == 0x48 { return "an HDF5 file (a Keras/TensorFlow checkpoint?)" }
        // JSON or text: the first non-space byte is a brace, a bracket or a letter, which as the low
        // byte of a little-endian u64 header length would need a header of exabytes.
        if let first = bytes.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }),
           first == UInt8(ascii: "{") || first == UInt8(ascii: "["), bytes.count >= 8,
           bytes.loadUnaligned(as: UInt64.self).littleEndian > 100_000_000 {
            return "a JSON file (config or index?)"
        }
        return nil
    }
}

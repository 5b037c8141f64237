/// The safetensors container's layout: what `Pipeline` writes for safetensors files, shards and
/// adapter weights.
enum SafetensorsWriter {
    /// Lays out `tensors` and `metadata` as a safetensors file named `file` (for messages).
    ///
    /// Layout follows the reference writer: tensors sorted by dtype width (largest first) then name,
    /// header padded with spaces so the data starts 8-byte aligned. Metadata values that are not strings
    /// are stored as their JSON text. Block-quantized (ggml) types cannot be stored and are an error.
    static func layout(_ tensors: [OutputTensor], metadata: Metadata, file: String) throws -> FileLayout {
        var seen = Set<String>()
        for t in tensors {
            try t.validate(file: file)
            guard t.type.dtype != nil else {
                throw ScalpelError.invalid(file: file, tensor: t.name, reason: "type \(t.type) cannot be stored in safetensors (dequantize or quantize to a safetensors layout first)")
            }
            guard t.name != "__metadata__" else {
                throw ScalpelError.invalid(file: file, tensor: t.name, reason: "a tensor cannot be named __metadata__")
            }
            guard seen.insert(t.name).inserted else {
                throw ScalpelError.invalid(file: file, tensor: t.name, reason: "duplicate tensor name")
            }
        }
        let (header, ordered) = SafetensorsHeader.build(tensors.map(\.info), metadata: metadata)
        let byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0) })
        return FileLayout(header: header, items: ordered.map { (byName[$0.name]!, 0) })
    }
}

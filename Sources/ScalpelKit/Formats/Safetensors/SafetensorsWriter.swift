/// Writes a single safetensors file.
public enum SafetensorsWriter {
    /// Writes `tensors` and `metadata` to `path` (atomically: temporary file, then rename).
    ///
    /// Layout follows the reference writer: tensors sorted by dtype width (largest first) then name,
    /// header padded with spaces so the data starts 8-byte aligned. Metadata values that are not strings
    /// are stored as their JSON text. Block-quantized (ggml) types cannot be stored and are an error.
    public static func write(_ tensors: [OutputTensor], metadata: Metadata, to path: String, zstdLevel: Int? = nil) throws {
        let out = try OutputFile(path: path, zstdLevel: zstdLevel)
        try write(tensors, metadata: metadata, into: out)
        try out.commit()
    }

    /// Writes into an open output file (not committed).
    static func write(_ tensors: [OutputTensor], metadata: Metadata, into out: OutputFile) throws {
        var seen = Set<String>()
        for t in tensors {
            try t.validate(file: out.path)
            guard t.type.dtype != nil else {
                throw ScalpelError.invalid(file: out.path, tensor: t.name, reason: "type \(t.type) cannot be stored in safetensors (dequantize or quantize to a safetensors layout first)")
            }
            guard t.name != "__metadata__" else {
                throw ScalpelError.invalid(file: out.path, tensor: t.name, reason: "a tensor cannot be named __metadata__")
            }
            guard seen.insert(t.name).inserted else {
                throw ScalpelError.invalid(file: out.path, tensor: t.name, reason: "duplicate tensor name")
            }
        }
        let (header, ordered) = SafetensorsHeader.build(tensors.map(\.info), metadata: metadata)
        try out.write(header)
        let byName = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0) })
        let writer = TensorDataWriter(out: out)
        for info in ordered { try writer.write(byName[info.name]!) }
        try writer.finish()
    }
}

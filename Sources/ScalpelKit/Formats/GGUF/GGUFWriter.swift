/// Placeholder until the GGUF branch lands.
public enum GGUFWriter {
    public static func write(_ tensors: [OutputTensor], metadata: Metadata, alignment: Int = 32, to path: String, zstdLevel: Int? = nil) throws {
        throw ScalpelError.invalid(file: path, tensor: nil, reason: "GGUF writing is not implemented yet")
    }
}

/// Placeholder until the GGUF branch lands.
public enum GGMLDequantize {
    public static func dequantize(_ type: GGMLType, _ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>) throws {
        throw ScalpelError.invalid(file: nil, tensor: nil, reason: "cannot dequantize \(type.name) yet")
    }
}

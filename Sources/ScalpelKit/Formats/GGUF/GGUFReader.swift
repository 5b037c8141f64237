/// Reads GGUF headers. (Placeholder: replaced by the full reader.)
enum GGUFReader {
    static func hasMagic(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x47 && bytes[1] == 0x47 && bytes[2] == 0x55 && bytes[3] == 0x46
    }

    static func parse(_ bytes: UnsafeRawBufferPointer, fileLength: Int?, file: String) throws -> (tensors: [TensorInfo], metadata: Metadata, alignment: Int, dataStart: Int) {
        throw ScalpelError.malformed(file: file, tensor: nil, reason: "GGUF reading is not implemented yet")
    }
}

// libFuzzer target: the GGUF header parser, on a whole file and as a prefix (the zstd header path),
// then every small tensor decoded (ggml block types dequantized).
@testable import ScalpelKit

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGGUF(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    _ = try? GGUFReader.parse(bytes, fileLength: size, file: "fuzz.gguf")
    _ = try? GGUFReader.parse(bytes, fileLength: nil, file: "fuzz.gguf")
    if let c = try? CheckpointReader.open(bytes: bytes, path: "fuzz.gguf", headerOnly: false) {
        for i in c.tensors.indices.prefix(8) where c.tensors[i].elementCount <= 1 << 16 {
            if let v = try? c.view(at: i) { _ = try? FloatConversion.floats(v) }
        }
    }
    return 0
}

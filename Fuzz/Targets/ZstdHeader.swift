// libFuzzer target: the zstd header-only path (a growing decompressed prefix, the GGUF or safetensors
// header read from it, counts checked by counting decompressed bytes).
// Byte 0 chooses: even -> the rest is taken as zstd frames as they are; odd -> the rest is compressed
// first, so that the header parsers see mutated headers through a valid frame.
@testable import ScalpelKit

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzZstdHeader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let rest = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    var input = Array(rest)
    if data[0] & 1 == 1 {
        guard let z = try? ZstdCompressor(level: 1, path: "fuzz") else { return 0 }
        var out: [UInt8] = []
        try? z.compress(rest, last: true) { out.append(contentsOf: $0) }
        input = out
    }
    input.withUnsafeBytes { b in
        _ = try? CheckpointReader.open(bytes: b, path: "fuzz.safetensors.zst", headerOnly: true)
        _ = try? Zstd.decompressedLength(b, upTo: 1 << 24, path: "fuzz.zst")
    }
    return 0
}

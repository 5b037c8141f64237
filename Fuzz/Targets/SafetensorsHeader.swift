// libFuzzer target: the safetensors header parser and the sharded index parser.
// Byte 0 chooses: even -> the input is a safetensors file (header parsed and checked against its length,
// then opened and every tensor decoded to f32); odd -> the rest is a model.safetensors.index.json.
@testable import ScalpelKit

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensorsHeader(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let rest = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    if data[0] & 1 == 0 {
        _ = try? SafetensorsHeader.parse(rest, fileLength: rest.count, file: "fuzz.safetensors")
        _ = try? SafetensorsHeader.parse(rest, fileLength: nil, file: "fuzz.safetensors")
        if let c = try? CheckpointReader.open(bytes: rest, path: "fuzz.safetensors", headerOnly: false) {
            for i in c.tensors.indices.prefix(8) where c.tensors[i].elementCount <= 1 << 16 {
                if let v = try? c.view(at: i) { _ = try? FloatConversion.floats(v) }
            }
            _ = try? LogicalTensors.resolve(c)
        }
    } else if let text = String(validating: rest, as: UTF8.self) {
        _ = try? ShardedSafetensors.parseIndex(text, indexPath: "fuzz.safetensors.index.json")
    }
    return 0
}

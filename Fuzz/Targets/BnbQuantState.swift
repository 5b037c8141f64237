// libFuzzer target: the bitsandbytes 4-bit quant-state reader. The input is the quant state's JSON,
// stored as the U8 tensor `w.weight.quant_state.bitsandbytes__nf4` next to small codes, absmax and
// quant_map tensors; the logical tensors are resolved and decoded.
@testable import ScalpelKit

private func safetensors(state: UnsafeRawBufferPointer) -> [UInt8] {
    let codes = [UInt8](repeating: 0x17, count: 32)           // 64 values
    let absmax: [Float] = [1.5]                              // one block of 64
    let qmap = [Float](repeating: 0.25, count: 16)
    let nested = [UInt8](repeating: 3, count: 1)
    let nestedAbsmax: [Float] = [2]
    var tensors: [(String, String, [Int], [UInt8])] = [
        ("w.weight", "U8", [32, 1], codes),
        ("w.weight.absmax", "F32", [1], absmax.withUnsafeBytes { Array($0) }),
        ("w.weight.quant_map", "F32", [16], qmap.withUnsafeBytes { Array($0) }),
        ("w.weight.quant_state.bitsandbytes__nf4", "U8", [state.count], Array(state)),
        ("x.weight", "U8", [32, 1], codes),
        ("x.weight.absmax", "U8", [1], nested),
        ("x.weight.nested_absmax", "F32", [1], nestedAbsmax.withUnsafeBytes { Array($0) }),
        ("x.weight.nested_quant_map", "F32", [16], qmap.withUnsafeBytes { Array($0) }),
        ("x.weight.quant_map", "F32", [16], qmap.withUnsafeBytes { Array($0) }),
        ("x.weight.quant_state.bitsandbytes__fp4", "U8", [state.count], Array(state)),
    ]
    tensors.sort { $0.0 < $1.0 }
    var header = "{"
    var offset = 0
    for (k, t) in tensors.enumerated() {
        header += (k > 0 ? "," : "") + "\"\(t.0)\":{\"dtype\":\"\(t.1)\",\"shape\":[\(t.2.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + t.3.count)]}"
        offset += t.3.count
    }
    header += "}"
    var out = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
    out += Array(header.utf8)
    for t in tensors { out += t.3 }
    return out
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBnbQuantState(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = safetensors(state: UnsafeRawBufferPointer(start: data, count: size))
    file.withUnsafeBytes { b in
        guard let c = try? CheckpointReader.open(bytes: b, path: "fuzz.safetensors", headerOnly: false),
              let logical = try? LogicalTensors.resolve(c) else { return }
        for l in logical where l.isQuantized { _ = try? l.decode() }
    }
    return 0
}

// libFuzzer target: the PEFT adapter_config.json reader (types, rank/alpha patterns as regular
// expressions, scaling).
@testable import ScalpelKit

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPEFTConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let text = String(validating: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self),
          let json = try? JSONParser.parse(text),
          let config = try? AdapterConfig(json: json, file: "adapter_config.json") else { return 0 }
    for path in ["model.layers.0.self_attn.q_proj", "lm_head", "model.embed_tokens", ""] {
        _ = config.rank(for: path)
        _ = config.scaling(for: path)
    }
    _ = config.targetModuleNames
    return 0
}

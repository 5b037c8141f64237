import Foundation

/// PEFT adapter folders: `adapter_config.json` next to `adapter_model.safetensors`.
public enum PEFTAdapter {
    /// The config file's name.
    public static let configFile = "adapter_config.json"
    /// The weights file's name.
    public static let weightsFile = "adapter_model.safetensors"

    /// Opens an adapter folder as a checkpoint whose `adapterConfig` is set.
    static func open(folder: String) throws -> Checkpoint {
        let configPath = folder + "/" + configFile
        let json: JSONValue
        do { json = try JSONParser.parse(try readSmallFile(configPath)) } catch let e as JSONParser.Failure {
            throw ScalpelError.malformed(file: configPath, tensor: nil, reason: e.description)
        }
        _ = try AdapterConfig(json: json, file: configPath)
        var weights = folder + "/" + weightsFile
        if !FileManager.default.fileExists(atPath: weights), FileManager.default.fileExists(atPath: weights + ".zst") {
            weights += ".zst"
        }
        guard FileManager.default.fileExists(atPath: weights) else {
            let reason = FileManager.default.fileExists(atPath: folder + "/adapter_model.bin")
                ? "only adapter_model.bin (a pickle) is present; Scalpel reads adapter_model.safetensors"
                : "no \(weightsFile)"
            throw ScalpelError.invalid(file: folder, tensor: nil, reason: reason)
        }
        let inner = try CheckpointReader.openFile(weights, headerOnly: false)
        guard inner.format == .safetensors else {
            throw ScalpelError.malformed(file: weights, tensor: nil, reason: "is not a safetensors file")
        }
        return Checkpoint(path: folder, format: .peftAdapter, compressed: inner.compressed, tensors: inner.tensors,
                          locations: inner.locations, files: inner.files, metadata: inner.metadata,
                          fileBytes: inner.fileBytes + (try FileManager.default.attributesOfItem(atPath: configPath)[.size] as? Int ?? 0),
                          adapterConfig: json)
    }
}

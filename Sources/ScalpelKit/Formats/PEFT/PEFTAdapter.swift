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
        if !FileManager.default.fileExists(atPath: weights), FileManager.default.fileExists(atPath: folder + "/adapter_model.bin") {
            weights = folder + "/adapter_model.bin"
        }
        guard FileManager.default.fileExists(atPath: weights) else {
            throw ScalpelError.invalid(file: folder, tensor: nil, reason: "no \(weightsFile)")
        }
        let inner = try CheckpointReader.openFile(weights, headerOnly: false)
        guard inner.format == .safetensors || inner.format == .pytorch else {
            throw ScalpelError.malformed(file: weights, tensor: nil, reason: "is not a safetensors file")
        }
        return Checkpoint(path: folder, format: .peftAdapter, compressed: inner.compressed, tensors: inner.tensors,
                          locations: inner.locations, files: inner.files, metadata: inner.metadata,
                          fileBytes: inner.fileBytes + (try FileManager.default.attributesOfItem(atPath: configPath)[.size] as? Int ?? 0),
                          adapterConfig: json)
    }
}

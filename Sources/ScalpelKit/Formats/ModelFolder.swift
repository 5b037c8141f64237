import Foundation

/// The non-weight files of a Hugging Face model folder (config.json, tokenizer files...), which commands
/// that write a model folder carry over.
public struct ModelFolder: Sendable {
    /// Files (names) of the folder that are not weights.
    public var companionFiles: [String]
    public let folder: String

    /// The companions of the folder holding `checkpointPath` (the path itself when it is a folder); an
    /// empty list when the checkpoint is a lone file.
    public init(checkpointPath: String) {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: checkpointPath, isDirectory: &isDir)
        let folder = isDir.boolValue ? checkpointPath : PathName.folder(checkpointPath)
        self.folder = folder
        guard isDir.boolValue || checkpointPath.hasSuffix(".index.json") else { companionFiles = []; return }
        let weightSuffixes = [".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json", ".pt", ".pth",
                              ".gguf", ".zst", ".ckpt", ".h5", ".msgpack", ".onnx"]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        // Regular files only (symbolic links followed): a FIFO or device among them would block the copy.
        companionFiles = names.filter { name in
            var st = stat()
            guard stat(folder + "/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return false }
            return !name.hasPrefix(".") && !weightSuffixes.contains(where: { name.hasSuffix($0) })
        }.sorted()
    }

    /// The files to put next to the output weights: the companions as they are, except config.json,
    /// which gets `quantization_config` set (or removed when nil and `dropQuantization`).
    public func extras(quantizationConfig: JSONValue?, dropQuantization: Bool = false) throws -> [FolderExtra] {
        try companionFiles.map { name in
            let path = folder + "/" + name
            if name == "config.json", quantizationConfig != nil || dropQuantization {
                var json = try JSONParser.parse(try readSmallFile(path))
                if let q = quantizationConfig {
                    json = json.setting("quantization_config", to: q)
                } else if case .object(let pairs) = json {
                    json = .object(pairs.filter { $0.0 != "quantization_config" })
                }
                return .write(name: name, contents: Array((JSONWriter.string(json, style: .pretty) + "\n").utf8))
            }
            return .copy(name: name, from: path)
        }
    }
}

/// A file to place in an output folder next to the weights (written by `Pipeline`).
public enum FolderExtra: Sendable {
    case copy(name: String, from: String)
    case write(name: String, contents: [UInt8])
}

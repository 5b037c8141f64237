import Foundation

/// A Hugging Face model folder: `config.json`, weights (safetensors, sharded or not, or PyTorch `.bin`),
/// and tokenizer files (`tokenizer.json`, `tokenizer_config.json`, `tokenizer.model`, ...).
public struct HFFolder {
    public let path: String
    /// `config.json`, with a nested `text_config` merged into the top level as llama.cpp does.
    public let config: JSONValue
    /// The weights.
    public let checkpoint: Checkpoint

    /// True when `path` is a folder holding `config.json` and no `adapter_config.json`.
    public static func looksLikeModelFolder(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        let fm = FileManager.default
        return fm.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
            && fm.fileExists(atPath: path + "/config.json") && !fm.fileExists(atPath: path + "/adapter_config.json")
    }

    public init(path: String) throws {
        self.path = path
        var config = try HFFolder.readJSON(path + "/config.json")
        if let text = config["text_config"]?.objectValue {
            for (k, v) in text { config = config.setting(k, to: v) }
        }
        self.config = config
        checkpoint = try CheckpointReader.open(path)
    }

    /// Parses a JSON file of the folder (at most 64 MB).
    static func readJSON(_ file: String) throws -> JSONValue {
        do { return try JSONParser.parse(try readSmallFile(file)) } catch let e as JSONParser.Failure {
            throw ScalpelError.malformed(file: file, tensor: nil, reason: e.description)
        }
    }

    /// A JSON file of the folder if it exists.
    func optionalJSON(_ name: String) throws -> JSONValue? {
        let p = path + "/" + name
        guard FileManager.default.fileExists(atPath: p) else { return nil }
        return try HFFolder.readJSON(p)
    }

    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path + "/" + name) }

    /// The first of `keys` present in the config (llama.cpp's `find_hparam`).
    func hparam(_ keys: [String]) -> JSONValue? {
        for k in keys { if let v = config[k], v != .null { return v } }
        return nil
    }

    /// A required non-negative integer hyperparameter as a GGUF u32.
    func u32(_ keys: [String]) throws -> MetadataValue {
        let v = try int(keys)
        guard let u = UInt32(exactly: v) else {
            throw ScalpelError.invalid(file: path + "/config.json", tensor: nil, reason: "\(keys[0]) \(v) does not fit a GGUF u32")
        }
        return .uint32(u)
    }

    /// A required number hyperparameter as a GGUF f32.
    func f32(_ keys: [String]) throws -> MetadataValue {
        guard let v = hparam(keys)?.doubleValue else {
            throw ScalpelError.invalid(file: path + "/config.json", tensor: nil, reason: "no number \(keys.joined(separator: " / ")) in config.json")
        }
        return .float32(Float(v))
    }

    /// A required integer hyperparameter.
    func int(_ keys: [String]) throws -> Int {
        guard let v = hparam(keys)?.intValue else {
            throw ScalpelError.invalid(file: path + "/config.json", tensor: nil, reason: "no integer \(keys.joined(separator: " / ")) in config.json")
        }
        return v
    }
}

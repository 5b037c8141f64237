import Foundation

/// Where and how a command writes its output, decided from the output path.
///
/// - `*.gguf` (optionally `.zst`): one GGUF file.
/// - `*.safetensors` (optionally `.zst`): one safetensors file.
/// - a name without an extension, a name ending in `/`, an existing folder, or any path with a shard
///   size: a model folder of safetensors shards with `model.safetensors.index.json` (one
///   `model.safetensors` when everything fits one shard).
/// - a PEFT adapter folder (`adapter_model.safetensors` + `adapter_config.json`), for commands that
///   write adapters (`Destination(adapterFolder:)`).
///
/// Any other extension (`out.bin`, `out.pt`, `out.json`) is refused rather than silently made a folder.
public struct Destination: Sendable {
    public enum Kind: Sendable, Equatable {
        case safetensors
        case gguf
        /// A model folder: shards of at most this many bytes of tensor data.
        case sharded(shardBytes: Int)
        /// A PEFT adapter folder.
        case adapter
    }

    /// Hugging Face's default shard size (`save_pretrained`'s 5GB).
    public static let defaultShardBytes = 5_000_000_000

    public var path: String
    public var kind: Kind
    /// zstd level when the path ends in `.zst` (default 3), else nil.
    public var zstdLevel: Int?

    /// True when the output is a folder.
    public var isFolder: Bool {
        switch kind {
        case .sharded, .adapter: return true
        case .safetensors, .gguf: return false
        }
    }

    /// The forms an output path can take, for error messages.
    public static let forms = "NAME.safetensors, NAME.gguf (either may end in .zst), or a folder (a name without an extension, or ending in /)"

    /// Decides the destination for `path`.
    /// - Parameters:
    ///   - shardBytes: when set, the output is a sharded folder.
    ///   - zstdLevel: compression level used when the path ends in `.zst`.
    /// - Throws: `ScalpelError.invalid` for an extension Scalpel does not write, a `.zst` folder, or a
    ///   shard size that is not positive.
    public init(path: String, shardBytes: Int? = nil, zstdLevel: Int? = nil) throws {
        self.path = path
        let compressed = path.hasSuffix(".zst")
        let stem = compressed ? String(path.dropLast(4)) : path
        self.zstdLevel = compressed ? (zstdLevel ?? 3) : nil
        if let shardBytes {
            guard !compressed else {
                throw ScalpelError.invalid(file: path, tensor: nil, reason: "a sharded output cannot be a .zst file")
            }
            guard shardBytes > 0 else { throw ScalpelError.invalid(file: path, tensor: nil, reason: "shard size must be positive") }
            kind = .sharded(shardBytes: shardBytes)
        } else if stem.hasSuffix(".gguf") {
            kind = .gguf
        } else if stem.hasSuffix(".safetensors") {
            kind = .safetensors
        } else if compressed {
            throw ScalpelError.invalid(file: path, tensor: nil, reason: "a .zst output must end in .safetensors.zst or .gguf.zst")
        } else if let ext = Destination.fileExtension(path) {
            throw ScalpelError.invalid(file: path, tensor: nil, reason: "Scalpel does not write .\(ext) files; the output must be \(Destination.forms)")
        } else {
            kind = .sharded(shardBytes: Destination.defaultShardBytes)
        }
    }

    /// A PEFT adapter folder at `path`.
    public init(adapterFolder path: String) {
        self.path = path
        kind = .adapter
        zstdLevel = nil
    }

    /// The extension of the last path component when it looks like a file type (1 to 12 letters or
    /// digits after the last dot, not all digits), nil for folders: a trailing `/`, an existing folder,
    /// or names such as `llama-3.1-8b` or `model-v1.5`.
    static func fileExtension(_ path: String) -> String? {
        guard !path.hasSuffix("/") else { return nil }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue { return nil }
        let name = PathName.file(path)
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return nil }
        let ext = name[name.index(after: dot)...]
        guard (1...12).contains(ext.count), ext.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }),
              ext.contains(where: \.isLetter), ext.first!.isLetter else { return nil }
        return String(ext)
    }
}

/// Parses a size such as "2GB" (decimal units KB MB GB TB), "512MiB" (binary units), or plain bytes.
public func parseByteSize(_ text: String) -> Int? {
    let t = text.trimmingCharacters(in: .whitespaces).uppercased()
    let units: [(String, Double)] = [("KIB", 1024), ("MIB", 1_048_576), ("GIB", 1_073_741_824), ("TIB", 1_099_511_627_776),
                                     ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("K", 1e3), ("M", 1e6),
                                     ("G", 1e9), ("T", 1e12), ("B", 1)]
    for (u, m) in units where t.hasSuffix(u) {
        guard let v = Double(t.dropLast(u.count).trimmingCharacters(in: .whitespaces)), v > 0, v * m < 9e18 else { return nil }
        return Int(v * m)
    }
    return Int(t).flatMap { $0 > 0 ? $0 : nil }
}

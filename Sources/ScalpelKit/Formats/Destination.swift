import Foundation

/// Where and how a command writes its output checkpoint, decided from the output path.
///
/// - `*.gguf` (optionally `.zst`): one GGUF file.
/// - `*.safetensors` (optionally `.zst`): one safetensors file.
/// - anything else, or any path with a shard size: a folder of safetensors shards with
///   `model.safetensors.index.json`.
public struct Destination: Sendable {
    public enum Kind: Sendable, Equatable {
        case safetensors
        case gguf
        /// Shards of at most this many bytes of tensor data.
        case sharded(shardBytes: Int)
    }

    public var path: String
    public var kind: Kind
    /// zstd level when the path ends in `.zst` (default 3), else nil.
    public var zstdLevel: Int?

    /// True when the output is a folder.
    public var isFolder: Bool { if case .sharded = kind { return true }; return false }

    /// Decides the destination for `path`.
    /// - Parameters:
    ///   - shardBytes: when set, the output is a sharded folder.
    ///   - zstdLevel: compression level used when the path ends in `.zst`.
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
        } else {
            kind = .sharded(shardBytes: 5_000_000_000)
        }
    }

    /// Refuses to write over any of `inputs` (compared by resolved path, also inside input folders).
    public func checkNotOverwriting(_ inputs: [String]) throws {
        let out = canonicalPath(path)
        for input in inputs {
            let inp = canonicalPath(input)
            if out == inp || out.hasPrefix(inp + "/") || inp.hasPrefix(out + "/") {
                throw ScalpelError.invalid(file: path, tensor: nil, reason: "output would overwrite the input \(input)")
            }
        }
    }

    /// Writes the tensors. GGUF outputs get `metadata` as typed key/values; safetensors outputs store
    /// non-string values as JSON text.
    /// `extras` go next to the weights of a folder output, and are ignored for single-file outputs.
    public func write(_ tensors: [OutputTensor], metadata: Metadata, ggufAlignment: Int = 32, extras: [FolderExtra] = []) throws {
        switch kind {
        case .safetensors:
            try SafetensorsWriter.write(tensors, metadata: metadata, to: path, zstdLevel: zstdLevel)
        case .gguf:
            try GGUFWriter.write(tensors, metadata: metadata, alignment: ggufAlignment, to: path, zstdLevel: zstdLevel)
        case .sharded(let shardBytes):
            try ShardedSafetensors.write(tensors, metadata: metadata, to: path, shardBytes: shardBytes, extras: extras)
        }
    }
}

/// Parses a size such as "2GB" (decimal units KB MB GB TB), "512MiB" (binary units), or plain bytes.
public func parseByteSize(_ text: String) -> Int? {
    let t = text.trimmingCharacters(in: .whitespaces).uppercased()
    let units: [(String, Double)] = [("KIB", 1024), ("MIB", 1_048_576), ("GIB", 1_073_741_824), ("TIB", 1_099_511_627_776),
                                     ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("K", 1e3), ("M", 1e6),
                                     ("G", 1e9), ("T", 1e12), ("B", 1)]
    for (u, m) in units where t.hasSuffix(u) {
        guard let v = Double(t.dropLast(u.count).trimmingCharacters(in: .whitespaces)), v > 0 else { return nil }
        return Int(v * m)
    }
    return Int(t).flatMap { $0 > 0 ? $0 : nil }
}

import Foundation

/// Edits of a checkpoint's metadata (`scalpel meta`): safetensors `__metadata__` (strings) and GGUF's
/// typed key/values.
public struct MetadataEdit: Sendable {
    /// `--set KEY=VALUE` pairs, in order.
    public var sets: [(key: String, value: String)] = []
    /// `--set-from-file KEY=FILE`: the file's UTF-8 text becomes a string value.
    public var setsFromFile: [(key: String, file: String)] = []
    /// `--type KEY=TYPE` for keys being set.
    public var types: [(key: String, type: MetadataType)] = []
    /// `--delete KEY`.
    public var deletes: [String] = []

    public init() {}

    public var isEmpty: Bool { sets.isEmpty && setsFromFile.isEmpty && deletes.isEmpty }

    /// Splits "KEY=VALUE" at the first "=" (a key holds no "=").
    public static func split(_ text: String) -> (String, String)? {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex else { return nil }
        return (String(text[..<eq]), String(text[text.index(after: eq)...]))
    }

    /// The edited metadata: sets (from the command line, then from files) replace values in place or
    /// append new keys; deletes remove keys.
    ///
    /// A set key keeps its existing type unless `--type` names one; a new key takes the `--type` type, or
    /// one inferred from the text (`MetadataType.infer`). safetensors metadata holds strings only.
    /// - Throws: `ScalpelError.invalid` when a value does not parse as its type, a key is both set and
    ///   deleted or set twice, a deleted key is missing, `--type` names a key not being set, a type other
    ///   than string is asked of safetensors, or `general.alignment` of a GGUF is set to a non-u32.
    public func apply(to metadata: Metadata, format: CheckpointFormat, file: String) throws -> Metadata {
        func bad(_ why: String) -> ScalpelError { .invalid(file: file, tensor: nil, reason: why) }
        let isGGUF = format == .gguf
        var values: [(String, String, fromFile: Bool)] = sets.map { ($0.key, $0.value, false) }
        for (key, path) in setsFromFile {
            values.append((key, try readSmallFile(path), true))
        }
        var seen = Set<String>()
        for (key, _, _) in values where !seen.insert(key).inserted { throw bad("metadata \"\(key)\" is set twice") }
        for key in deletes where seen.contains(key) { throw bad("metadata \"\(key)\" is both set and deleted") }
        for (key, _) in types where !seen.contains(key) {
            throw bad("--type \(key): \"\(key)\" is not being set (add --set \(key)=VALUE)")
        }
        var out = metadata
        for (key, text, fromFile) in values {
            let asked = types.last(where: { $0.key == key })?.type
            let type: MetadataType
            if !isGGUF {
                if let asked, asked != .string {
                    throw bad("metadata \"\(key)\": safetensors __metadata__ holds strings only, not \(asked)")
                }
                type = .string
            } else if let asked {
                type = asked
            } else if fromFile {
                type = .string
            } else {
                type = metadata[key].map { MetadataType(of: $0) } ?? MetadataType.infer(text)
            }
            if fromFile && type != .string { throw bad("metadata \"\(key)\": --set-from-file sets a string, not \(type)") }
            let value = try type.parse(text, key: key, file: file)
            if isGGUF && key == GGUFConstants.Key.alignment {
                guard case .uint32 = value else { throw bad("metadata \"\(key)\" must be u32") }
            }
            out[key] = value
        }
        for key in deletes {
            guard out[key] != nil else { throw bad("metadata \"\(key)\" is not in the file (nothing to delete)") }
            out[key] = nil
        }
        return out
    }
}

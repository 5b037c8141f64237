/// The `meta` command's listing of a checkpoint's metadata: key, type and value.
public enum MetadataListing {
    /// One line per key: `key  type  value` (long strings and arrays shortened as inspect does).
    public static func text(_ metadata: Metadata, path: String, format: CheckpointFormat) -> String {
        var lines = ["\(path) (\(format.rawValue)): \(metadata.entries.count) metadata keys"]
        guard !metadata.isEmpty else { return lines[0] }
        var table = TextTable(header: ["key", "type", "value"])
        for (k, v) in metadata.entries {
            table.add([k, MetadataType(of: v).description, InspectReport.short(v)])
        }
        lines.append(table.render())
        return lines.joined(separator: "\n")
    }

    /// `{"path", "format", "metadata": {key: value}, "types": {key: type}}`.
    public static func json(_ metadata: Metadata, path: String, format: CheckpointFormat) -> JSONValue {
        .object([
            ("path", .string(path)), ("format", .string(format.rawValue)), ("metadata", metadata.json),
            ("types", .object(metadata.entries.map { ($0.key, .string(MetadataType(of: $0.value).description)) })),
        ])
    }

    /// One value for `--get`: strings as they are, anything else as JSON.
    public static func value(_ v: MetadataValue) -> String {
        if case .string(let s) = v { return s }
        return JSONWriter.string(v.json, style: .compact)
    }
}

/// Serializes `JSONValue`s: compact (as safetensors headers and `json.dumps(separators=...)` write them)
/// or indented for people.
public enum JSONWriter {
    /// The layout of the text.
    public enum Style: Sendable {
        /// No spaces: `{"a":[1,2]}`.
        case compact
        /// Python `json.dumps(x)` default separators: `{"a": [1, 2]}`.
        case python
        /// Two-space indentation, one key per line.
        case pretty
    }

    /// The text of `value`. Doubles print in shortest round-trip form; NaN and infinities (not JSON)
    /// print as `null`.
    public static func string(_ value: JSONValue, style: Style = .pretty) -> String {
        var out = ""
        write(value, style: style, indent: 0, into: &out)
        return out
    }

    private static func write(_ v: JSONValue, style: Style, indent: Int, into out: inout String) {
        switch v {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if !d.isFinite { out += "null" }
            else if d == d.rounded(), abs(d) < 1e16 { out += pythonFloat(d) }
            else { out += "\(d)" }
        case .string(let s): writeString(s, into: &out)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (k, item) in items.enumerated() {
                if k > 0 { out += style == .compact ? "," : (style == .python ? ", " : ",") }
                if style == .pretty { out += "\n" + String(repeating: "  ", count: indent + 1) }
                write(item, style: style, indent: indent + 1, into: &out)
            }
            if style == .pretty { out += "\n" + String(repeating: "  ", count: indent) }
            out += "]"
        case .object(let pairs):
            if pairs.isEmpty { out += "{}"; return }
            out += "{"
            for (k, pair) in pairs.enumerated() {
                if k > 0 { out += style == .compact ? "," : (style == .python ? ", " : ",") }
                if style == .pretty { out += "\n" + String(repeating: "  ", count: indent + 1) }
                writeString(pair.0, into: &out)
                out += style == .compact ? ":" : ": "
                write(pair.1, style: style, indent: indent + 1, into: &out)
            }
            if style == .pretty { out += "\n" + String(repeating: "  ", count: indent) }
            out += "}"
        }
    }

    /// A whole-valued double printed as Python does ("3.0").
    private static func pythonFloat(_ d: Double) -> String {
        String(Int64(d)) + ".0"
    }

    private static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            default: out.unicodeScalars.append(u)
            }
        }
        out += "\""
    }
}

/// Making untrusted text (tensor names, metadata keys and values, JSON keys, paths) safe to print on one
/// terminal line.
public enum Escape {
    /// `text` with every control character written as an escape: `\n`, `\r`, `\t`, `\e` (ESC), other C0
    /// and C1 controls and DEL as `\xNN`; Unicode line/paragraph separators and bidirectional overrides
    /// as `\u{NNNN}`. Everything else, backslashes included, is unchanged, so printable text is printed
    /// as it is and escaping twice changes nothing more.
    public static func untrusted(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for s in text.unicodeScalars {
            guard needsEscape(s) else { out.unicodeScalars.append(s); continue }
            switch s.value {
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x1B: out += "\\e"
            case 0..<0x100: out += "\\x" + hex(s.value, 2)
            default: out += "\\u{" + hex(s.value, 4) + "}"
            }
        }
        return out
    }

    private static func needsEscape(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0..<0x20, 0x7F..<0xA0, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }

    private static func hex(_ v: UInt32, _ digits: Int) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }
}

import Foundation
import ScalpelKit
#if canImport(Glibc)
import Glibc
#endif

/// Writing to the terminal: errors and warnings on standard error, one line each, with untrusted text
/// (tensor names, keys) escaped so it cannot break the line or send terminal escapes.
enum Terminal {
    /// True when standard error is a terminal (progress is drawn only then).
    static var stderrIsTerminal: Bool { isatty(2) == 1 }

    static func error(_ text: String) {
        write("scalpel: error: " + escaped(text) + "\n")
    }

    static func warning(_ text: String) {
        write("scalpel: warning: " + escaped(text) + "\n")
    }

    /// Writes raw text to standard error.
    static func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// `text` with control characters (newlines, carriage returns, ESC...) written as `\n`, `\r`,
    /// `\u{1B}`.
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else { return text }
        var out = ""
        for u in text.unicodeScalars {
            switch u {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.properties.generalCategory == .control {
                    out += "\\u{" + String(u.value, radix: 16, uppercase: true) + "}"
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out
    }
}

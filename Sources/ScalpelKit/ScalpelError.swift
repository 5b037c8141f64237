import Foundation

/// Every failure Scalpel reports. Each prints as one line: `FILE: TENSOR: what is wrong`.
public enum ScalpelError: Error, Equatable, LocalizedError, CustomStringConvertible {
    /// A file is not a valid checkpoint: `file`, optionally the `tensor` at fault, and what is wrong.
    case malformed(file: String, tensor: String?, reason: String)
    /// A file could not be opened, read, written or renamed.
    case io(file: String, reason: String)
    /// The request cannot be carried out on these inputs (a missing tensor, a type that cannot be
    /// written in the chosen format, an output that would overwrite an input...).
    case invalid(file: String?, tensor: String?, reason: String)

    /// The one-line message. Every part is escaped (`Escape.untrusted`): names and reasons quote text
    /// from the files, which may hold newlines or terminal escapes.
    public var description: String {
        switch self {
        case .malformed(let file, let tensor, let reason):
            return [file, tensor, reason].compactMap { $0 }.map(Escape.untrusted).joined(separator: ": ")
        case .io(let file, let reason):
            return "\(Escape.untrusted(file)): \(Escape.untrusted(reason))"
        case .invalid(let file, let tensor, let reason):
            return [file, tensor, reason].compactMap { $0 }.map(Escape.untrusted).joined(separator: ": ")
        }
    }

    public var errorDescription: String? { description }
}

import Foundation

/// Reads a small text file (configs, indexes) whole.
public func readSmallFile(_ path: String, limit: Int = 64 << 20) throws -> String {
    let file = try MappedFile(path: path)
    guard file.bytes.count <= limit else {
        throw ScalpelError.malformed(file: path, tensor: nil, reason: "file is larger than \(limit) bytes")
    }
    guard let s = String(validating: file.bytes, as: UTF8.self) else {
        throw ScalpelError.malformed(file: path, tensor: nil, reason: "not valid UTF-8")
    }
    return s
}

/// Writes a text file atomically.
public func writeTextFile(_ text: String, to path: String) throws {
    let out = try OutputFile(path: path)
    try out.write(Array(text.utf8))
    try out.commit()
}

/// The absolute path with symbolic links resolved, for comparing paths.
public func canonicalPath(_ path: String) -> String {
    URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
}

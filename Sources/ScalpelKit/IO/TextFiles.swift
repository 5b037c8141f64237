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

/// Splitting paths without Foundation's `NSString` path methods, which trap on one-character paths in
/// swift-corelibs-foundation.
public enum PathName {
    /// The folder part of `path` ("." when there is none): "a/b/c" -> "a/b", "c" -> ".", "x/" -> ".",
    /// "/c" -> "/".
    public static func folder(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "." }
        return slash == p.startIndex ? "/" : String(p[..<slash])
    }

    /// The last part of `path`, without trailing slashes: "a/b.safetensors" -> "b.safetensors", "x/" -> "x".
    public static func file(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return String(p) }
        return String(p[p.index(after: slash)...])
    }

    /// The last part without its extension: "a/model.gguf" -> "model".
    public static func stem(_ path: String) -> String {
        let f = file(path)
        guard let dot = f.lastIndex(of: "."), dot != f.startIndex else { return f }
        return String(f[..<dot])
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The rules that keep a write from harming anything but its own output.
enum OutputGuard {
    /// Refuses `output` when it is, or would replace, any file an input resolves to (device and inode
    /// after following symbolic links: the same file under another name, a shard of an input index, a
    /// file inside an input folder), when it lies inside an input folder, when an input lies inside it,
    /// or when it exists and `force` is false.
    static func check(_ output: String, against inputs: [String], force: Bool) throws {
        let out = canonicalPath(output)
        var inputFiles: [(id: FileIdentity, input: String)] = []
        for input in inputs {
            let inp = canonicalPath(input)
            if out == inp || out.hasPrefix(inp + "/") || inp.hasPrefix(out + "/") {
                throw ScalpelError.invalid(file: output, tensor: nil, reason: "output would overwrite the input \(input)")
            }
            inputFiles += FileIdentity.all(at: inp).map { ($0, input) }
        }
        for file in FileIdentity.all(at: out) {
            if let hit = inputFiles.first(where: { $0.id == file }) {
                throw ScalpelError.invalid(file: output, tensor: nil, reason: "output would overwrite the input \(hit.input) (the same file)")
            }
        }
        if !force && FileIdentity.exists(out) {
            throw ScalpelError.invalid(file: output, tensor: nil, reason: "output already exists (--force replaces it)")
        }
    }

    /// Runs `commit` (which renames the new output into place). With `force`, an existing folder (or a
    /// folder where a file goes) is first moved aside and removed once the new output is in place, or
    /// moved back if `commit` fails.
    static func replacing(_ path: String, force: Bool, commit: () throws -> Void) throws {
        var isDir: ObjCBool = false
        guard force, FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
            try commit()
            return
        }
        let aside = PathName.folder(path) + "/." + PathName.file(path) + ".old-\(getpid())"
        guard rename(path, aside) == 0 else {
            throw ScalpelError.io(file: path, reason: "cannot move the existing output aside: \(String(cString: strerror(errno)))")
        }
        do { try commit() } catch {
            rename(aside, path)
            throw error
        }
        try? FileManager.default.removeItem(atPath: aside)
    }
}

/// A file's device and inode.
struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64

    /// True when something (file, folder, or dangling link) exists at `path`.
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// The identity of `path` (following links) and, when it is a folder, of every entry in it.
    static func all(at path: String) -> [FileIdentity] {
        var st = stat()
        guard stat(path, &st) == 0 else { return [] }
        var ids = [FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))]
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
                var e = stat()
                if stat(path + "/" + name, &e) == 0 { ids.append(FileIdentity(device: UInt64(e.st_dev), inode: UInt64(e.st_ino))) }
            }
        }
        return ids
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A folder being built: files go into a temporary sibling folder, which `commit()` renames into place.
/// Dropping it without committing removes the temporary folder and everything in it.
public final class TemporaryFolder {
    /// The temporary folder to write into.
    public let path: String
    /// The final path.
    public let finalPath: String
    private var committed = false

    /// Creates the temporary folder next to `finalPath` (whether `finalPath` may already exist is the
    /// caller's rule: `Pipeline` refuses it unless forced).
    public init(finalPath: String) throws {
        self.finalPath = finalPath
        let dir = PathName.folder(finalPath)
        let base = PathName.file(finalPath)
        var template = Array((dir + "/.\(base).tmp-XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw ScalpelError.io(file: finalPath, reason: "cannot create a temporary folder: \(String(cString: strerror(errno)))")
        }
        path = String(cString: template.map { UInt8(bitPattern: $0) } + [0])
    }

    deinit {
        if !committed { try? FileManager.default.removeItem(atPath: path) }
    }

    /// Renames the folder into place.
    public func commit() throws {
        chmod(path, 0o755)
        guard rename(path, finalPath) == 0 else {
            throw ScalpelError.io(file: finalPath, reason: "cannot rename into place: \(String(cString: strerror(errno)))")
        }
        committed = true
    }
}

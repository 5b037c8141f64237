import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A folder being built: files go into a temporary sibling folder, which `commit()` renames into place.
/// Dropping it without committing removes the temporary folder and everything in it; so does SIGINT or
/// SIGTERM (see `Temporaries`).
public final class TemporaryFolder {
    /// The temporary folder to write into.
    public let path: String
    /// The final path.
    public let finalPath: String
    private var committed = false
    private let slot: Int32

    /// Creates the temporary folder next to `finalPath` (whether `finalPath` may already exist is the
    /// caller's rule: `Pipeline` refuses it unless forced).
    public init(finalPath: String) throws {
        self.finalPath = finalPath
        (path, slot) = try Temporaries.createFolder(for: finalPath)
        Temporaries.setDisplay(temporaryFolder: path, finalPath: finalPath)
    }

    deinit {
        Temporaries.setDisplay(temporaryFolder: path, finalPath: nil)
        if !committed {
            try? FileManager.default.removeItem(atPath: path)
            Temporaries.forget(slot: slot)
        }
    }

    /// Renames the folder into place.
    public func commit() throws {
        chmod(path, 0o755)
        let e = Temporaries.commit(slot: slot, from: path, to: finalPath)
        guard e == 0 else {
            throw ScalpelError.io(file: finalPath, reason: "cannot rename into place: \(String(cString: strerror(e)))")
        }
        committed = true
    }
}

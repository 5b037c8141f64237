import CScalpelKernels
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The temporary files and folders of a run: created registered (so that SIGINT, SIGTERM or SIGHUP
/// removes them before the process exits with 130, 143 or 129), renamed into place atomically with
/// respect to that cleanup, and swept when a run killed with SIGKILL left some behind.
///
/// Naming: `.<NAME>.tmp-<PID>-XXXXXX` next to the final path. The first time a run writes into a folder
/// it removes the temporaries of that naming whose process no longer exists (`sweepStale`), so debris
/// of a `kill -9` lasts until the next run that writes to the same folder.
public enum Temporaries {
    /// Installs the SIGINT/SIGTERM/SIGHUP/SIGBUS handlers (idempotent). Call once at startup.
    public static func installSignalHandlers() {
        scalpel_install_signal_handlers()
    }

    /// Removes every registered temporary now; returns how many.
    @discardableResult
    public static func removeAll() -> Int { Int(scalpel_temp_remove_all()) }

    /// The template of a temporary next to `finalPath`.
    static func template(for finalPath: String) -> String {
        PathName.folder(finalPath) + "/.\(PathName.file(finalPath)).tmp-\(getpid())-XXXXXX"
    }

    /// Creates a registered temporary file for `finalPath`: its path, descriptor and registry slot.
    static func createFile(for finalPath: String) throws -> (path: String, fd: Int32, slot: Int32) {
        sweepStale(in: PathName.folder(finalPath))
        var template = Array(template(for: finalPath).utf8CString)
        var slot: Int32 = -1
        let fd = template.withUnsafeMutableBufferPointer { scalpel_temp_create_file($0.baseAddress!, &slot) }
        guard fd >= 0 else {
            throw ScalpelError.io(file: finalPath, reason: "cannot create a temporary file: \(String(cString: strerror(errno)))")
        }
        return (String(cString: template.map { UInt8(bitPattern: $0) } + [0]), fd, slot)
    }

    /// Creates a registered temporary folder for `finalPath`.
    static func createFolder(for finalPath: String) throws -> (path: String, slot: Int32) {
        sweepStale(in: PathName.folder(finalPath))
        var template = Array(template(for: finalPath).utf8CString)
        var slot: Int32 = -1
        let r = template.withUnsafeMutableBufferPointer { scalpel_temp_create_folder($0.baseAddress!, &slot) }
        guard r == 0 else {
            throw ScalpelError.io(file: finalPath, reason: "cannot create a temporary folder: \(String(cString: strerror(errno)))")
        }
        return (String(cString: template.map { UInt8(bitPattern: $0) } + [0]), slot)
    }

    private static let foldersLock = NSLock()
    nonisolated(unsafe) private static var folders: [String: String] = [:]

    /// Records that files written under the temporary folder `temporary` are reported as under `final`.
    static func setDisplay(temporaryFolder temporary: String, finalPath final: String?) {
        foldersLock.lock(); defer { foldersLock.unlock() }
        folders[temporary] = final
    }

    /// `path` as the user knows it: a file inside a temporary output folder is named inside the final
    /// folder (an error must not name an internal temporary path).
    public static func displayPath(_ path: String) -> String {
        foldersLock.lock(); defer { foldersLock.unlock() }
        for (temp, final) in folders where path.hasPrefix(temp + "/") {
            return final + path.dropFirst(temp.count)
        }
        return path
    }

    /// Renames a registered temporary into place and forgets it; returns errno on failure, else 0.
    static func commit(slot: Int32, from: String, to: String) -> Int32 {
        scalpel_temp_commit(slot, from, to) == 0 ? 0 : errno
    }

    /// Forgets a temporary the caller has removed.
    static func forget(slot: Int32) { scalpel_temp_forget(slot) }

    private static let sweptLock = NSLock()
    nonisolated(unsafe) private static var swept: Set<String> = []

    /// Removes, once per folder and run, the temporaries of Scalpel's naming in `folder` whose process is
    /// gone (left by a run killed with SIGKILL, or by a crash). Returns the names removed.
    @discardableResult
    public static func sweepStale(in folder: String) -> [String] {
        sweptLock.lock()
        let first = swept.insert(folder).inserted
        sweptLock.unlock()
        guard first, let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return [] }
        var removed: [String] = []
        for name in names {
            guard let pid = ownerPID(ofTemporary: name), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            let p = folder + "/" + name
            if (try? FileManager.default.removeItem(atPath: p)) != nil { removed.append(name) }
        }
        return removed
    }

    /// The PID in a name `.<NAME>.tmp-<PID>-XXXXXX`, or nil when `name` is not of that form.
    static func ownerPID(ofTemporary name: String) -> pid_t? {
        guard name.hasPrefix("."), let r = name.range(of: ".tmp-", options: .backwards) else { return nil }
        let rest = name[r.upperBound...]
        let parts = rest.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1].count == 6, parts[1].allSatisfy({ $0.isLetter || $0.isNumber }),
              let pid = pid_t(parts[0]), pid > 0 else { return nil }
        return pid
    }
}

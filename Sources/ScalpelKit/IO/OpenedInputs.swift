import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Every file this process has opened as an input (checkpoints, shards, index and config files), by
/// device and inode, so that no output can replace one of them whatever path leads to it (an index's
/// shard, a symlink, a hard link); and the checkpoints opened, so that an error raised deep in a kernel
/// (which knows the tensor but not the file) can name the user's file.
public enum OpenedInputs {
    private struct Entry {
        var device: UInt64
        var inode: UInt64
        var path: String
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var files: [Entry] = []
    /// The first checkpoints opened (a command's inputs); bounded so a long-lived process does not grow.
    nonisolated(unsafe) private static var checkpoints: [(path: String, names: Set<String>)] = []
    private static let maxCheckpoints = 32

    /// Records an opened input file (`path` as the user would know it).
    static func register(device: UInt64, inode: UInt64, path: String) {
        lock.lock(); defer { lock.unlock() }
        if !files.contains(where: { $0.device == device && $0.inode == inode }) {
            files.append(Entry(device: device, inode: inode, path: path))
        }
    }

    /// Records an opened checkpoint and its tensor names (the first `maxCheckpoints` of a process).
    static func register(_ checkpoint: Checkpoint) {
        lock.lock(); defer { lock.unlock() }
        guard checkpoints.count < maxCheckpoints else { return }
        checkpoints.append((checkpoint.path, Set(checkpoint.tensors.map(\.name))))
    }

    /// The input that `path` is (same device and inode), if any. A missing `path` is no input.
    public static func input(at path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        lock.lock(); defer { lock.unlock() }
        return files.first { $0.device == UInt64(st.st_dev) && $0.inode == UInt64(st.st_ino) }?.path
    }

    /// Refuses an output path that is (or resolves to) an opened input.
    /// - Throws: `ScalpelError.invalid` naming the output and the input it would replace.
    public static func checkNotInput(_ output: String) throws {
        if let input = input(at: output) {
            throw ScalpelError.invalid(file: output, tensor: nil, reason: "output would overwrite the input \(input)")
        }
    }

    /// `error` with a missing file filled in: the opened checkpoint holding the error's tensor, else the
    /// first checkpoint opened (the command's main input).
    public static func attribute(_ error: ScalpelError) -> ScalpelError {
        guard case .invalid(nil, let tensor, let reason) = error else { return error }
        lock.lock(); defer { lock.unlock() }
        let path = tensor.flatMap { t in checkpoints.first { $0.names.contains(t) }?.path } ?? checkpoints.first?.path
        guard let path else { return error }
        return .invalid(file: path, tensor: tensor, reason: reason)
    }
}

extension ScalpelError {
    /// This error with `file` (and `tensor`, when it has none) filled in when it names no file.
    public func naming(file: String, tensor: String? = nil) -> ScalpelError {
        guard case .invalid(nil, let t, let reason) = self else { return self }
        return .invalid(file: file, tensor: t ?? tensor, reason: reason)
    }
}

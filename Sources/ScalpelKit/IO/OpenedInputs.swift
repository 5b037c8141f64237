import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The checkpoints this process has opened, so that an error raised deep in a kernel (which knows the
/// tensor but not the file) can name the user's file. (That no output replaces an input, by device and
/// inode, is `OutputGuard`'s rule in the pipeline.)
public enum OpenedInputs {
    private static let lock = NSLock()
    /// The first checkpoints opened (a command's inputs); bounded so a long-lived process does not grow.
    nonisolated(unsafe) private static var checkpoints: [(path: String, names: Set<String>)] = []
    private static let maxCheckpoints = 32

    /// Records an opened checkpoint and its tensor names (the first `maxCheckpoints` of a process).
    static func register(_ checkpoint: Checkpoint) {
        lock.lock(); defer { lock.unlock() }
        guard checkpoints.count < maxCheckpoints else { return }
        checkpoints.append((checkpoint.path, Set(checkpoint.tensors.map(\.name))))
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

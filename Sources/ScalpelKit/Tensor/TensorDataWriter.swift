import Dispatch
import Foundation

/// Writes tensors' bytes into an output file, in order, computing the next tensor while the previous one
/// is being written.
///
/// Computed tensors are filled into one of two scratch buffers, which alternate: the bytes of tensor i go
/// to the file on a background queue while tensor i+1 is computed into the other buffer. So at most two
/// tensors' outputs are in memory, and writing (a copy into the page cache, or compression) overlaps
/// computing. Bytes reach the file in call order. The first error (of a fill or of a write) is thrown by
/// the next call or by `finish()`.
final class TensorDataWriter {
    /// What the background writes touch. The queued blocks retain this, never the writer itself, so the
    /// writer's deinit always runs on the caller's thread (where it may wait for the queue).
    private final class Shared: @unchecked Sendable {
        let out: OutputFile
        /// Signalled when a buffer's bytes have been written and it can be filled again.
        let available = [DispatchSemaphore(value: 1), DispatchSemaphore(value: 1)]
        private let lock = NSLock()
        private var error: Error?

        init(out: OutputFile) { self.out = out }

        var firstError: Error? {
            lock.lock(); defer { lock.unlock() }
            return error
        }

        func record(_ e: Error) {
            lock.lock(); defer { lock.unlock() }
            if error == nil { error = e }
        }
    }

    private let shared: Shared
    private var out: OutputFile { shared.out }
    private let queue = DispatchQueue(label: "scalpel.tensor-writer")
    private var buffers: [UnsafeMutableRawBufferPointer?] = [nil, nil]
    private var nextBuffer = 0

    init(out: OutputFile) { shared = Shared(out: out) }

    deinit {
        queue.sync {}
        for b in buffers { b?.deallocate() }
    }

    /// Writes `tensor`'s bytes, then `padding` zero bytes.
    func write(_ tensor: OutputTensor, padding: Int = 0) throws {
        try rethrowWriteError()
        let n = tensor.byteCount
        switch tensor.content {
        case .view(let v):
            guard v.bytes.count == n else {
                throw ScalpelError.invalid(file: out.path, tensor: tensor.name, reason: "has \(v.bytes.count) bytes, expected \(n)")
            }
            enqueue(UncheckedBox((v.bytes, tensor.onWritten)), padding: padding, releasing: nil)
        case .compute(let fill):
            let k = nextBuffer
            nextBuffer ^= 1
            shared.available[k].wait()
            if (buffers[k]?.count ?? -1) < n {
                buffers[k]?.deallocate()
                buffers[k] = .allocate(byteCount: max(n, 1), alignment: 64)
            }
            let buf = UnsafeMutableRawBufferPointer(rebasing: buffers[k]![0..<n])
            do { try fill(buf) } catch {
                shared.available[k].signal()
                throw error
            }
            enqueue(UncheckedBox((UnsafeRawBufferPointer(buf), tensor.onWritten)), padding: padding, releasing: k)
        }
    }

    /// Waits for every pending write; throws the first write error.
    func finish() throws {
        queue.sync {}
        try rethrowWriteError()
    }

    private func enqueue(_ item: UncheckedBox<(UnsafeRawBufferPointer, (() -> Void)?)>, padding: Int, releasing k: Int?) {
        let shared = self.shared
        queue.async {
            if shared.firstError == nil {
                do {
                    try shared.out.write(item.value.0)
                    try shared.out.writeZeros(padding)
                    item.value.1?()
                } catch {
                    shared.record(error)
                }
            }
            if let k { shared.available[k].signal() }
        }
    }

    private func rethrowWriteError() throws {
        if let e = shared.firstError { throw e }
    }
}

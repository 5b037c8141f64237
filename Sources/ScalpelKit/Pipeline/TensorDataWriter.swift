import Dispatch
import Synchronization

/// Writes tensors' bytes into an output file, in order, computing the next tensor while the previous one
/// is being written.
///
/// Computed tensors are filled into one of two scratch buffers, which alternate: the bytes of tensor i go
/// to the file on a background queue while tensor i+1 is computed into the other buffer. So at most two
/// tensors' outputs are in memory, and writing (a copy into the page cache, or compression) overlaps
/// computing. Bytes reach the file in call order. The first error (of a fill or of a write) is thrown by
/// the next call or by `finish()`. `written` is called on the background queue after each tensor's bytes
/// are in the file.
final class TensorDataWriter {
    /// What the background writes touch. The queued blocks retain this, never the writer itself, so the
    /// writer's deinit always runs on the caller's thread (where it may wait for the queue).
    private final class Shared: Sendable {
        /// Used only from the serial queue once writing starts.
        let out: UncheckedBox<OutputFile>
        /// Signalled when a buffer's bytes have been written and it can be filled again.
        let available = [DispatchSemaphore(value: 1), DispatchSemaphore(value: 1)]
        let error = Mutex<Error?>(nil)

        init(out: OutputFile) { self.out = UncheckedBox(out) }

        func record(_ e: Error) { error.withLock { if $0 == nil { $0 = e } } }
    }

    private let shared: Shared
    private var out: OutputFile { shared.out.value }
    private let queue = DispatchQueue(label: "scalpel.tensor-writer")
    private var buffers: [UnsafeMutableRawBufferPointer?] = [nil, nil]
    private var nextBuffer = 0
    private let written: @Sendable (OutputTensor) -> Void

    init(out: OutputFile, written: @escaping @Sendable (OutputTensor) -> Void = { _ in }) {
        shared = Shared(out: out)
        self.written = written
    }

    deinit {
        queue.sync {}
        for b in buffers { b?.deallocate() }
    }

    /// Writes `tensor`'s bytes, then `padding` zero bytes; returns what its computation measured
    /// (`.none` for copied views).
    @discardableResult
    func write(_ tensor: OutputTensor, padding: Int = 0) throws -> TensorOutcome {
        try rethrowWriteError()
        let n = tensor.byteCount
        switch tensor.content {
        case .view(let v):
            guard v.bytes.count == n else {
                throw ScalpelError.invalid(file: out.path, tensor: tensor.name, reason: "has \(v.bytes.count) bytes, expected \(n)")
            }
            enqueue(UncheckedBox(v.bytes), tensor: tensor, padding: padding, releasing: nil)
            return .none
        case .compute(let fill):
            let k = nextBuffer
            nextBuffer ^= 1
            shared.available[k].wait()
            if (buffers[k]?.count ?? -1) < n {
                buffers[k]?.deallocate()
                buffers[k] = .allocate(byteCount: max(n, 1), alignment: 64)
            }
            let buf = UnsafeMutableRawBufferPointer(rebasing: buffers[k]![0..<n])
            let outcome: TensorOutcome
            do { outcome = try fill(buf) } catch {
                shared.available[k].signal()
                throw error
            }
            enqueue(UncheckedBox(UnsafeRawBufferPointer(buf)), tensor: tensor, padding: padding, releasing: k)
            return outcome
        }
    }

    /// Waits for every pending write; throws the first write error.
    func finish() throws {
        queue.sync {}
        try rethrowWriteError()
    }

    private func enqueue(_ bytes: UncheckedBox<UnsafeRawBufferPointer>, tensor: OutputTensor, padding: Int, releasing k: Int?) {
        let shared = self.shared, written = self.written
        queue.async {
            if shared.error.withLock({ $0 == nil }) {
                do {
                    try shared.out.value.write(bytes.value)
                    try shared.out.value.writeZeros(padding)
                    tensor.onWritten?()
                    written(tensor)
                } catch {
                    shared.record(error)
                }
            }
            if let k { shared.available[k].signal() }
        }
    }

    private func rethrowWriteError() throws {
        if let e = shared.error.withLock({ $0 }) { throw e }
    }
}

import Dispatch
import Foundation
import Synchronization

/// How many threads Scalpel's parallel loops use: all cores unless set (`--threads N`).
///
/// Work is always split at fixed chunk boundaries that depend only on the data, never on this number,
/// so every output is byte-identical for any thread count; only the number of workers that run the
/// chunks changes.
public enum Parallelism {
    private static let configured = Atomic<Int>(0)

    /// The active processor count, read once: Foundation reads it from the cgroup files on every call
    /// (four files opened and read), which cost 0.4 s of CPU over the 2,000 parallel loops of a 1 GiB
    /// quantize.
    private static let processors = ProcessInfo.processInfo.activeProcessorCount

    /// The thread count in force: the value set, else the active processor count.
    public static var threads: Int {
        let n = configured.load(ordering: .relaxed)
        return n > 0 ? n : processors
    }

    /// Sets the thread count for the rest of the process (at least 1); 0 restores the default.
    public static func setThreads(_ n: Int) {
        configured.store(max(0, n), ordering: .relaxed)
    }

    /// Runs `body(i)` for every `i` in `0..<count` on up to `threads` workers; worker `w` runs
    /// `w, w + workers, ...`. Which worker runs an item never changes what the item computes.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        let workers = max(1, min(threads, count))
        if workers == 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                for i in stride(from: w, to: count, by: workers) { box.value(i) }
            }
        }
    }
}

/// Runs `body` over `0..<count` split into fixed chunks of `chunk` items, in parallel.
///
/// Chunk boundaries depend only on `count` and `chunk`, never on the number of threads, so any result
/// assembled per chunk is the same on every machine.
public func parallelChunks(count: Int, chunk: Int, _ body: @Sendable (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let chunk = max(1, chunk)
    let n = (count + chunk - 1) / chunk
    Parallelism.forEach(n) { i in
        let lo = i * chunk
        body(lo..<min(count, lo + chunk))
    }
}

/// Runs a throwing `body` over fixed chunks in parallel; rethrows the error of the lowest failing chunk.
public func parallelChunksThrowing(count: Int, chunk: Int, _ body: @Sendable (Range<Int>) throws -> Void) throws {
    guard count > 0 else { return }
    let n = (count + max(1, chunk) - 1) / max(1, chunk)
    let errors = UnsafeMutableBufferPointer<Error?>.allocate(capacity: n)
    errors.initialize(repeating: nil)
    defer { errors.deallocate() }
    let sink = UncheckedBox(errors)
    parallelChunks(count: count, chunk: chunk) { r in
        do { try body(r) } catch { sink.value[r.lowerBound / max(1, chunk)] = error }
    }
    if let e = errors.compactMap({ $0 }).first { throw e }
}

/// Wraps a non-Sendable value (an unsafe pointer or closure) for use from concurrent iterations.
/// Safe because every user touches disjoint memory from each iteration, or only reads.
public struct UncheckedBox<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}

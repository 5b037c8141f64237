import Dispatch

/// Runs `body` over `0..<count` split into fixed chunks of `chunk` items, in parallel.
///
/// Chunk boundaries depend only on `count` and `chunk`, never on the number of threads, so any result
/// assembled per chunk is the same on every machine.
public func parallelChunks(count: Int, chunk: Int, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let chunk = max(1, chunk)
    let n = (count + chunk - 1) / chunk
    if n == 1 { body(0..<count); return }
    withoutActuallyEscaping(body) { body in
        let box = UncheckedBox(body)
        DispatchQueue.concurrentPerform(iterations: n) { i in
            let lo = i * chunk
            box.value(lo..<min(count, lo + chunk))
        }
    }
}

/// Runs a throwing `body` over fixed chunks in parallel; rethrows the error of the lowest failing chunk.
public func parallelChunksThrowing(count: Int, chunk: Int, _ body: (Range<Int>) throws -> Void) throws {
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

/// Wraps a non-Sendable value (an unsafe pointer or closure) for use from concurrent iterations that
/// touch disjoint memory.
public struct UncheckedBox<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}

import Foundation
import Testing
@testable import ScalpelKit

/// Throughput of the ggml quantizers and dequantizers on 256 MiB of f32. Opt-in, in a release build:
///
///     SCALPEL_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter GGMLQuantBenchmarkTests
///
/// Prints the best of 5 runs: wall-clock time of the parallel call, and thread CPU time of a one-thread
/// call (which other load on the machine disturbs less).
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SCALPEL_BENCH"] != nil))
struct GGMLQuantBenchmarkTests {
    private func best(_ clock: clockid_t, _ body: () throws -> Void) rethrows -> Double {
        var best = Double.infinity
        for _ in 0..<5 {
            var a = timespec(), b = timespec()
            clock_gettime(clock, &a)
            try body()
            clock_gettime(clock, &b)
            best = min(best, Double(b.tv_sec - a.tv_sec) + Double(b.tv_nsec - a.tv_nsec) / 1e9)
        }
        return best
    }

    @Test func throughputOn256MiB() throws {
        let count = 64 << 20
        var rng = TestRandom(seed: 7)
        var x = [Float](repeating: 0, count: count)
        for i in 0..<count { x[i] = Float(Int64(bitPattern: rng.next()) >> 40) / Float(1 << 21) }  // uniform in [-4, 4)
        var back = [Float](repeating: 0, count: count)
        let gb = Double(count * 4) / 1e9
        func rate(_ seconds: Double) -> String { String(format: "%.2f GB/s", gb / seconds) }
        for type in GGMLQuantize.supportedTypes {
            var q = [UInt8](repeating: 0, count: count / 32 * type.typeSize)
            var single = q
            try x.withUnsafeBufferPointer { src in
                let parallel = try q.withUnsafeMutableBytes { dst in
                    try best(CLOCK_MONOTONIC) { try GGMLQuantize.quantize(type, src, into: dst) }
                }
                let oneThread = try single.withUnsafeMutableBytes { dst in
                    try best(CLOCK_THREAD_CPUTIME_ID) { try GGMLQuantize.quantize(type, src, into: dst, blocksPerChunk: Int.max) }
                }
                print("quantize \(type.name): \(rate(parallel)) of f32 input, parallel wall clock; \(rate(oneThread)) one thread (CPU time)")
            }
            #expect(q == single)
            let (parallel, oneThread) = try q.withUnsafeBytes { src in
                try back.withUnsafeMutableBufferPointer { dst in
                    (try best(CLOCK_MONOTONIC) { try GGMLDequantize.dequantize(type, src, into: dst) },
                     try best(CLOCK_THREAD_CPUTIME_ID) { try GGMLDequantize.dequantize(type, src, into: dst, blocksPerChunk: Int.max) })
                }
            }
            print("dequantize \(type.name): \(rate(parallel)) of f32 output, parallel wall clock; \(rate(oneThread)) one thread (CPU time)")
            // The coarsest step: Q4_0's |d| = max |x| / 8 = 0.5, as f16 (its range -8...7 leaves one end a
            // full step off).
            #expect(zip(x, back).allSatisfy { abs($0 - $1) <= 0.51 })
        }
    }
}

import Foundation
import Testing
@testable import ScalpelKit

/// Throughput of the 4-bit quantizer on 256 MiB of f32 values. Opt-in, and meaningful only in release:
/// `SCALPEL_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter FourBitThroughputTests`
@Suite(.enabled(if: ProcessInfo.processInfo.environment["SCALPEL_BENCH"] != nil))
struct FourBitThroughputTests {
    @Test func nf4QuantizesAtLeast1Point1GBPerSecond() throws {
        let x = normalSamples(64 << 20, seed: 3)
        var best = Double.infinity
        var bytes = 0
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            let q = try x.withUnsafeBufferPointer { try FourBit.quantize($0, kind: .nf4, blockSize: 64) }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            bytes = q.codes.count
        }
        let gbps = Double(x.count * 4) / best / 1e9
        print("NF4 quantize: 256 MiB f32 in \(best) s = \(gbps) GB/s (\(bytes) code bytes)")
        #expect(gbps >= 1.1)
    }

    @Test func otherKernelsThroughput() throws {
        let x = normalSamples(64 << 20, seed: 4)
        func time(_ label: String, _ body: () throws -> Void) rethrows -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            let s = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            print("\(label): \(Double(x.count * 4) / s / 1e9) GB/s of f32")
            return s
        }
        var q: FourBitQuantized?
        let fp4 = try time("FP4 quantize") { q = try x.withUnsafeBufferPointer { try FourBit.quantize($0, kind: .fp4) } }
        var out = [Float](repeating: 0, count: x.count)
        let deq = time("FP4 dequantize") { out.withUnsafeMutableBufferPointer { FourBit.dequantize(q!, into: $0) } }
        let err = time("QuantError") { _ = x.withUnsafeBufferPointer { a in out.withUnsafeBufferPointer { QuantError.measure(original: a, reconstructed: $0) } } }
        #expect(fp4 < 1 && deq < 1 && err < 1)
    }
}

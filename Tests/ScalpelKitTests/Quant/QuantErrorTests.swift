import CScalpelKernels
import Foundation
import Testing
@testable import ScalpelKit

@Suite struct QuantErrorTests {
    func measure(_ x: [Float], _ y: [Float]) -> QuantError {
        x.withUnsafeBufferPointer { a in y.withUnsafeBufferPointer { QuantError.measure(original: a, reconstructed: $0) } }
    }

    @Test func knownValues() {
        // x = (3, 4): energy 25; error (0, 0.5) -> 0.25; relative RMSE 0.1, SQNR 20 dB.
        let e = measure([3, 4], [3, 3.5])
        #expect(e.signalEnergy == 25 && e.errorEnergy == 0.25 && e.maxAbsError == 0.5)
        #expect(abs(e.relativeRMSE - 0.1) < 1e-15)
        #expect(abs(e.sqnrDB - 20) < 1e-12)
        #expect(measure([1, 2], [1, 2]).sqnrDB == .infinity)
        #expect(measure([], []).count == 0)
    }

    @Test func longBuffersUseDoubleAccumulationAndFixedChunks() {
        // 3M values of 1 against 1 - 2^-12 (tail lanes included): exact sums in f64.
        let n = 3_000_001
        let x = [Float](repeating: 1, count: n)
        let y = [Float](repeating: 1 - 0x1p-12, count: n)
        let e = measure(x, y)
        #expect(e.signalEnergy == Double(n))
        #expect(e.errorEnergy == Double(n) * 0x1p-24)
        #expect(abs(e.sqnrDB - 10 * log10(0x1p24)) < 1e-9)
        #expect(e.maxAbsError == 0x1p-12)
    }

    @Test func nanPropagates() {
        let e = measure([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, .nan, 4, 5, 6, 7, 8, 9])
        #expect(e.errorEnergy.isNaN && e.maxAbsError.isNaN && e.relativeRMSE.isNaN)
    }

    @Test func vectorizedSumsEqualThePortableOnesBitForBit() {
        // Every length class: empty, tail only, whole groups of 16, groups plus a tail.
        var rng = TestRandom(seed: 11)
        for n in [0, 1, 15, 16, 17, 1000, 4099] {
            let x = (0..<n).map { _ in Float(Int64(bitPattern: rng.next()) >> 40) / Float(1 << 20) }
            let y = x.map { $0 + Float(Int64(bitPattern: rng.next()) >> 50) / Float(1 << 20) }
            var fast = scalpel_error_sums_t(), portable = scalpel_error_sums_t()
            scalpel_error_sums(x, y, n, &fast)
            scalpel_error_sums_portable(x, y, n, &portable)
            #expect(fast.signal.bitPattern == portable.signal.bitPattern, "n = \(n)")
            #expect(fast.error.bitPattern == portable.error.bitPattern, "n = \(n)")
            #expect(fast.max_abs_bits == portable.max_abs_bits, "n = \(n)")
            // Against a plain f64 loop: same terms, another order.
            let signal = x.reduce(0.0) { $0 + Double($1) * Double($1) }
            let error = zip(x, y).reduce(0.0) { let d = Double($1.0 - $1.1); return $0 + d * d }
            #expect(abs(fast.signal - signal) <= 1e-12 * max(signal, 1), "n = \(n)")
            #expect(abs(fast.error - error) <= 1e-12 * max(error, 1e-30), "n = \(n)")
            #expect(Float(bitPattern: fast.max_abs_bits) == zip(x, y).map { abs($0 - $1) }.max() ?? 0, "n = \(n)")
        }
    }

    @Test func nanInTheVectorPartOrTheTailWins() {
        for at in [3, 20] {  // a lane of the first group of 16; the tail of 21 values
            var y = [Float](repeating: 1, count: 21)
            y[at] = .nan
            let e = measure([Float](repeating: 1, count: 21), y)
            #expect(e.maxAbsError.isNaN && e.errorEnergy.isNaN, "NaN at \(at)")
        }
    }
}

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
}

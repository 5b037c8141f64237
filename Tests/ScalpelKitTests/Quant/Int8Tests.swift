import CScalpelKernels
import Testing
@testable import ScalpelKit

@Suite struct Int8Tests {
    func quantize(_ w: [Float], rows: Int, columns: Int) -> BnbInt8Quantized {
        w.withUnsafeBufferPointer { BnbInt8.quantize($0, rows: rows, columns: columns) }
    }

    func dequantize(_ q: BnbInt8Quantized) -> [Float] {
        var out = [Float](repeating: 0, count: q.rows * q.columns)
        out.withUnsafeMutableBufferPointer { BnbInt8.dequantize(q, into: $0) }
        return out
    }

    @Test func matchesBitsandbytesByteForByte() {
        let v = BnbVectors.root["int8"]!
        let rows = v["rows"]!.intValue!, columns = v["columns"]!.intValue!
        let q = quantize(BnbVectors.floats(v["input"]), rows: rows, columns: columns)
        #expect(q.cb.map(Int.init) == BnbVectors.ints(v["cb"]))
        #expect(bitPatterns(q.scb) == bitPatterns(BnbVectors.floats(v["scb"])))
        #expect(bitPatterns(dequantize(q)) == bitPatterns(BnbVectors.floats(v["dequantized"])))
    }

    @Test func rulesOnSmallRows() {
        let q = quantize([0, 0, 0, 0,
                          1, -0.5, 0.25, 0.0039370079,
                          3, 1.5, -1.5, 0.75], rows: 3, columns: 4)
        #expect(q.scb == [0, 1, 3])
        #expect(q.cb == [0, 0, 0, 0,
                         127, -64, 32, 0,   // -63.5 rounds half to even; 0.49997 (f16) rounds to 0
                         127, 64, -64, 32])
        #expect(dequantize(q)[5] == (-64 * 1) * Float(7.874015718698502e-3))
    }

    @Test func infiniteAfterFloat16Rounding() {
        let q = quantize([70000, 1, -2, 0], rows: 1, columns: 4)
        #expect(q.scb == [.infinity])
        #expect(q.cb == [0, 0, 0, 0])
    }

    @Test func roundTripErrorOnNormalData() {
        let x = normalSamples(64 * 16384)
        let q = quantize(x, rows: 16384, columns: 64)
        let e = x.withUnsafeBufferPointer { a in dequantize(q).withUnsafeBufferPointer { QuantError.measure(original: a, reconstructed: $0) } }
        #expect(e.relativeRMSE > 0.0057 && e.relativeRMSE < 0.0062, "relative RMSE \(e.relativeRMSE)")
        let wide = quantize(x, rows: 256, columns: 4096)
        let e2 = x.withUnsafeBufferPointer { a in dequantize(wide).withUnsafeBufferPointer { QuantError.measure(original: a, reconstructed: $0) } }
        #expect(e2.relativeRMSE > 0.0083 && e2.relativeRMSE < 0.0091, "relative RMSE of 4096-wide rows \(e2.relativeRMSE)")
    }

    @Test func vectorizedRowKernelEqualsThePortableOneBitForBit() {
        // Rows of 37 values (two vectors of 16 and a tail of 5): normal values, a value beyond f16's
        // range, subnormals, ±0, NaN in the vector part and in the tail, an all-zero row.
        var rng = TestRandom(seed: 9)
        let n = 37
        var rows = (0..<6).map { _ in (0..<n).map { _ in Float(Int64(bitPattern: rng.next()) >> 40) / Float(1 << 22) } }
        rows[1][7] = 70000
        rows[2][3] = 1e-41
        rows[2][4] = -0.0
        rows[3][20] = .nan
        rows[4][35] = .nan
        rows[5] = [Float](repeating: 0, count: n)
        for row in rows {
            var codes = ([Int8](repeating: 1, count: n), [Int8](repeating: 1, count: n))
            var back = ([Float](repeating: 1, count: n), [Float](repeating: 1, count: n))
            let fast = scalpel_int8_quantize_row(row, n, &codes.0, &back.0, 0)
            let portable = scalpel_int8_quantize_row(row, n, &codes.1, &back.1, 1)
            #expect(fast.bitPattern == portable.bitPattern)
            #expect(codes.0 == codes.1)
            #expect(back.0.map(\.bitPattern) == back.1.map(\.bitPattern))
            #expect(scalpel_int8_quantize_row(row, n, nil, nil, 0).bitPattern == fast.bitPattern, "the SCB alone is the same")
        }
        #expect(scalpel_int8_quantize_row(rows[1], n, nil, nil, 0) == .infinity)
        #expect(scalpel_int8_quantize_row(rows[3], n, nil, nil, 0).isNaN && scalpel_int8_quantize_row(rows[4], n, nil, nil, 0).isNaN)
    }
}

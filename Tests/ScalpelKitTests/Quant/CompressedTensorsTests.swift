import CScalpelKernels
import Testing
@testable import ScalpelKit

@Suite struct CompressedTensorsTests {
    func quantize(_ w: [Float], rows: Int, columns: Int, bits: Int, strategy: CompressedTensors.Strategy,
                  symmetric: Bool, dtype: DType) throws -> CompressedTensorsQuantized {
        try w.withUnsafeBufferPointer {
            try CompressedTensors.quantize($0, rows: rows, columns: columns, bits: bits, strategy: strategy, symmetric: symmetric, dtype: dtype)
        }
    }

    func dequantize(_ q: CompressedTensorsQuantized) -> [Float] {
        var out = [Float](repeating: 0, count: q.rows * q.columns)
        out.withUnsafeMutableBufferPointer { CompressedTensors.dequantize(q, into: $0) }
        return out
    }

    @Test func matchesCompressedTensorsByteForByte() throws {
        let cases = BnbVectors.root["compressed_tensors"]!.arrayValue!
        #expect(cases.count == 6)
        for c in cases {
            let bits = c["bits"]!.intValue!, rows = c["rows"]!.intValue!, columns = c["columns"]!.intValue!
            let symmetric = c["symmetric"]!.boolValue!
            let strategy: CompressedTensors.Strategy = c["group"]!.intValue.map { .group($0) } ?? .channel
            let dtype = DType(rawValue: c["dtype"]!.stringValue!)!
            let label = "\(bits)-bit \(strategy) symmetric \(symmetric) \(dtype)"
            let q = try quantize(BnbVectors.floats(c["input"]), rows: rows, columns: columns, bits: bits,
                                 strategy: strategy, symmetric: symmetric, dtype: dtype)
            #expect(q.packed.map(Int.init) == BnbVectors.ints(c["packed"]), "\(label): weight_packed")
            #expect(bitPatterns(q.scales) == bitPatterns(BnbVectors.floats(c["scales"])), "\(label): weight_scale")
            #expect(q.packedColumns == columns * bits / 32 && q.weightShape == [Int64(rows), Int64(columns)])
            if symmetric {
                #expect(q.zeroPoints == nil && q.packedZeroPoints == nil)
            } else {
                #expect(q.zeroPoints?.map(Int.init) == BnbVectors.ints(c["zero_points"]), "\(label): zero points")
                #expect(q.packedZeroPoints?.map(Int.init) == BnbVectors.ints(c["packed_zero_points"]), "\(label): packed zero points")
            }
        }
    }

    @Test func packingLayoutAndZeroScale() throws {
        // One row: values -8...7 at scale 1 (absmax 7.5 -> scale 1 after the 7.5 divide).
        var row: [Float] = (0..<16).map { Float($0 - 8) }
        row[0] = -7.5
        let q = try quantize(row, rows: 1, columns: 16, bits: 4, strategy: .group(16), symmetric: true, dtype: .f32)
        #expect(q.scales == [1])
        // -7.5 rounds half to even to -8; q + 8 = 0, 1, 2, ... first value in the lowest nibble.
        #expect(q.packed.map { UInt32(bitPattern: $0) } == [0x7654_3210, 0xFEDC_BA98])
        let zero = try quantize([Float](repeating: 0, count: 8), rows: 1, columns: 8, bits: 4, strategy: .channel, symmetric: true, dtype: .bf16)
        #expect(zero.scales == [0x1p-7] && zero.packed == [Int32(bitPattern: 0x8888_8888)])
        let int8 = try quantize([127.5, -1, 0, 1], rows: 1, columns: 4, bits: 8, strategy: .channel, symmetric: true, dtype: .f32)
        #expect(int8.scales == [1] && int8.packed == [Int32(bitPattern: 0x8180_7FFF)])
    }

    @Test func bf16DoubleRoundingMatters() throws {
        // absmax 1.0 -> scale R(1 / 7.5) = 0.13379 (bf16 0x3E09); 0.734375 / scale = 5.489 is rounded to
        // bf16 5.5 before torch.round, which then gives 6 (half to even), not 5.
        let q = try quantize([1, 0.734375, 0, 0, 0, 0, 0, 0], rows: 1, columns: 8, bits: 4, strategy: .channel, symmetric: true, dtype: .bf16)
        #expect(q.scales[0].bitPattern == 0x3E09_0000)
        #expect(UInt32(bitPattern: q.packed[0]) & 0xFF == (7 + 8) | (6 + 8) << 4)
    }

    @Test func rejectsBadArguments() {
        #expect(throws: ScalpelError.self) { try quantize([1, 2, 3], rows: 1, columns: 3, bits: 4, strategy: .group(2), symmetric: true, dtype: .f32) }
        #expect(throws: ScalpelError.self) { try quantize([1, 2], rows: 1, columns: 2, bits: 3, strategy: .channel, symmetric: true, dtype: .f32) }
        #expect(throws: ScalpelError.self) { try quantize([1, 2], rows: 1, columns: 2, bits: 4, strategy: .channel, symmetric: true, dtype: .i8) }
    }

    @Test func roundTripErrorOnNormalData() throws {
        let x = normalSamples(1 << 20)
        for (bits, group, symmetric, lo, hi) in [(4, 64, true, 0.1023, 0.1033), (4, 128, true, 0.1103, 0.1113),
                                                 (4, 64, false, 0.0905, 0.0915), (8, 64, true, 0.0059, 0.0062)] {
            let q = try quantize(x, rows: x.count / 1024, columns: 1024, bits: bits, strategy: .group(group), symmetric: symmetric, dtype: .f32)
            let e = x.withUnsafeBufferPointer { a in dequantize(q).withUnsafeBufferPointer { QuantError.measure(original: a, reconstructed: $0) } }
            #expect(e.relativeRMSE > lo && e.relativeRMSE < hi, "int\(bits) group \(group) symmetric \(symmetric): \(e.relativeRMSE)")
        }
    }

    @Test func vectorizedRowKernelEqualsThePortableOneBitForBit() {
        // Normal values, NaN, ±Inf, values beyond f16's range, subnormals, ±0, in the vector part and
        // the tail (groups of 40: two vectors of 16 and a tail of 8), every rounding and layout.
        var rng = TestRandom(seed: 5)
        let groups = 6, size = 40
        var w = (0..<(groups * size)).map { _ in Float(Int64(bitPattern: rng.next()) >> 40) / Float(1 << 22) }
        for (i, v) in [(3, Float.nan), (45, .infinity), (100, -.infinity), (85, 70000), (161, 1e-41), (170, -0.0), (205, .nan), (238, .nan)] { w[i] = v }
        for i in 120..<160 { w[i] = 0 }
        for rounding: Int32 in [0, 1, 2] {
            for (bits, symmetric) in [(4, true), (4, false), (8, true), (8, false)] {
                var codes = ([UInt8](repeating: 0, count: w.count), [UInt8](repeating: 0, count: w.count))
                var scales = ([Float](repeating: 0, count: groups), [Float](repeating: 0, count: groups))
                var zps = ([Int8](repeating: 0, count: groups), [Int8](repeating: 0, count: groups))
                var back = ([Float](repeating: 0, count: w.count), [Float](repeating: 0, count: w.count))
                scalpel_ct_quantize_row(w, groups, size, Int32(bits), symmetric ? 1 : 0, rounding, &codes.0, &scales.0, &zps.0, &back.0, 0)
                scalpel_ct_quantize_row(w, groups, size, Int32(bits), symmetric ? 1 : 0, rounding, &codes.1, &scales.1, &zps.1, &back.1, 1)
                let what = "rounding \(rounding), int\(bits), symmetric \(symmetric)"
                #expect(codes.0 == codes.1, "\(what)")
                #expect(scales.0.map(\.bitPattern) == scales.1.map(\.bitPattern), "\(what)")
                #expect(zps.0 == zps.1, "\(what)")
                #expect(back.0.map(\.bitPattern) == back.1.map(\.bitPattern), "\(what)")
                #expect(scales.0[0].isNaN && !scales.0[1].isFinite && scales.0[3] == (rounding == 1 ? 0x1p-7 : rounding == 2 ? 0x1p-10 : 0x1p-23),
                        "\(what): \(scales.0)")
            }
        }
    }
}

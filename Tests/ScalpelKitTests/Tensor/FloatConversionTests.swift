import Testing
@testable import ScalpelKit

@Suite struct FloatConversionTests {
    /// f32 -> f16 agrees with Swift's own correctly rounded Float16 conversion on awkward values
    /// (ties, subnormals, overflow, NaN), on both the F16C and the scalar tail path.
    @Test func f16RoundsToNearestEven() throws {
        var values: [Float] = [0, -0.0, 1, 65504, 65519.99, 65520, 1e-8, 5.9604645e-08, 2.9802322e-08,
                               2.9802326e-08, 6.1035156e-05, 6.1035153e-05, 1.00048828125, 1.00146484375,
                               .infinity, -.infinity, 3.14159, -1e10, 1e-45]
        for i in 0..<4000 { values.append(Float(bitPattern: UInt32(truncatingIfNeeded: i &* 2_654_435_761))) }
        var out = [UInt8](repeating: 0, count: values.count * 2)
        try values.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBytes { try FloatConversion.encode(src, as: .f16, into: $0) }
        }
        for (i, v) in values.enumerated() {
            let got = UInt16(out[2 * i]) | UInt16(out[2 * i + 1]) << 8
            if v.isNaN {
                #expect(Float16(bitPattern: got).isNaN)
            } else {
                #expect(got == Float16(v).bitPattern, "value \(v)")
            }
        }
        // And back exactly.
        var back = [Float](repeating: 0, count: values.count)
        try out.withUnsafeBytes { src in
            try back.withUnsafeMutableBufferPointer { try FloatConversion.decode(.plain(.f16), src, into: $0) }
        }
        for (i, v) in values.enumerated() where !v.isNaN { #expect(back[i] == Float(Float16(v))) }
    }

    @Test func bf16RoundsToNearestEvenAndKeepsNaN() throws {
        let values: [Float] = [1, Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x3F80_8001),
                               .nan, -.nan, Float(bitPattern: 0x7F80_0001), 3.4e38, -.infinity]
        let expected: [UInt16] = [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0x7FC0, 0xFFC0, 0x7FC0, 0x7F80, 0xFF80]
        var out = [UInt16](repeating: 0, count: values.count)
        try values.withUnsafeBufferPointer { src in
            try out.withUnsafeMutableBytes { try FloatConversion.encode(src, as: .bf16, into: $0) }
        }
        #expect(out == expected)
    }

    @Test func decodesIntegersAndDoubles() throws {
        let ints: [Int16] = [-3, 0, 32767]
        var out = [Float](repeating: 0, count: 3)
        try ints.withUnsafeBytes { src in try out.withUnsafeMutableBufferPointer { try FloatConversion.decode(.plain(.i16), src, into: $0) } }
        #expect(out == [-3, 0, 32767])
        let doubles: [Double] = [0.1, -1e300, 2]
        try doubles.withUnsafeBytes { src in try out.withUnsafeMutableBufferPointer { try FloatConversion.decode(.plain(.f64), src, into: $0) } }
        #expect(out == [0.1, -.infinity, 2])
    }
}

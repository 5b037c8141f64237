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

    /// The message of the `invalid` error `body` throws (nil when it does not throw one).
    private func invalidReason(_ body: () throws -> Void) -> (tensor: String?, reason: String)? {
        do { try body() } catch ScalpelError.invalid(_, let tensor, let reason) { return (tensor, reason) } catch { return nil }
        return nil
    }

    /// Every helper refuses buffers of the wrong size before touching them, naming the tensor, as the
    /// dequantizers do.
    @Test func wrongBufferSizesThrowNamingTheTensor() throws {
        let values: [Float] = [1, 2, 3, 4]
        var small = [UInt8](repeating: 0, count: 7)  // 4 f16 values need 8 bytes
        var big = [UInt8](repeating: 0, count: 20)  // 4 f32 values need 16 bytes
        let encodeF16 = invalidReason {
            try values.withUnsafeBufferPointer { v in try small.withUnsafeMutableBytes { try FloatConversion.encode(v, as: .f16, into: $0, tensor: "w") } }
        }
        #expect(encodeF16?.tensor == "w")
        #expect(encodeF16?.reason == "output buffer has 7 bytes, but 4 F16 values need 8 bytes")
        let encodeF32 = invalidReason {
            try values.withUnsafeBufferPointer { v in try big.withUnsafeMutableBytes { try FloatConversion.encode(v, as: .f32, into: $0, tensor: "w") } }
        }
        #expect(encodeF32?.reason == "output buffer has 20 bytes, but 4 F32 values need 16 bytes")

        var out = [Float](repeating: 0, count: 4)
        let decodeBF16 = invalidReason {
            try small.withUnsafeBytes { src in try out.withUnsafeMutableBufferPointer { try FloatConversion.decode(.plain(.bf16), src, into: $0, tensor: "b") } }
        }
        #expect(decodeBF16?.tensor == "b")
        #expect(decodeBF16?.reason == "input buffer has 7 bytes, but 4 BF16 values need 8 bytes")
        // A block type: 32 values of Q8_0 are one 34-byte block.
        var block = [UInt8](repeating: 0, count: 33), block32 = [Float](repeating: 0, count: 32)
        let decodeQ8 = invalidReason {
            try block.withUnsafeBytes { src in try block32.withUnsafeMutableBufferPointer { try FloatConversion.decode(.block(.q8_0), src, into: $0, tensor: "q") } }
        }
        #expect(decodeQ8?.tensor == "q")
        #expect(decodeQ8?.reason == "input buffer has 33 bytes, but 32 Q8_0 values need 34 bytes")
        // 31 values are not a whole number of Q8_0 blocks.
        var values31 = [Float](repeating: 0, count: 31)
        let decodePartialBlock = invalidReason {
            try block.withUnsafeBytes { src in try values31.withUnsafeMutableBufferPointer { try FloatConversion.decode(.block(.q8_0), src, into: $0, tensor: "q") } }
        }
        #expect(decodePartialBlock?.reason.hasSuffix("need a whole number of bytes or blocks, which they are not") == true)

        let castIn = invalidReason {
            try small.withUnsafeBytes { src in
                try big.withUnsafeMutableBytes { try FloatConversion.cast(src, from: .plain(.f16), to: .f32, count: 4, into: $0, tensor: "c") }
            }
        }
        #expect(castIn?.tensor == "c")
        #expect(castIn?.reason == "input buffer has 7 bytes, but 4 F16 values need 8 bytes")
        let eight = [UInt8](repeating: 0, count: 8)
        let castOut = invalidReason {
            try eight.withUnsafeBytes { src in
                try big.withUnsafeMutableBytes { try FloatConversion.cast(src, from: .plain(.f16), to: .f32, count: 4, into: $0, tensor: "c") }
            }
        }
        #expect(castOut?.reason == "output buffer has 20 bytes, but 4 F32 values need 16 bytes")
        // Same dtype (a plain copy) is checked too.
        let castCopy = invalidReason {
            try eight.withUnsafeBytes { src in
                try small.withUnsafeMutableBytes { try FloatConversion.cast(src, from: .plain(.f16), to: .f16, count: 4, into: $0, tensor: "c") }
            }
        }
        #expect(castCopy?.reason == "output buffer has 7 bytes, but 4 F16 values need 8 bytes")
        #expect(small == [UInt8](repeating: 0, count: 7) && big == [UInt8](repeating: 0, count: 20), "nothing is written on error")
    }

    @Test func unsupportedDTypesThrowBeforeTheSizeCheck() {
        var out = [Float](repeating: 0, count: 2)
        let f8 = invalidReason {
            try [UInt8](repeating: 0, count: 5).withUnsafeBytes { src in
                try out.withUnsafeMutableBufferPointer { try FloatConversion.decode(.plain(.f8e4m3), src, into: $0, tensor: "f") }
            }
        }
        #expect(f8?.tensor == "f")
        #expect(f8?.reason == "cannot compute on dtype F8_E4M3")
        let i32 = invalidReason {
            var dst = [UInt8](repeating: 0, count: 8)
            try [Float](repeating: 0, count: 2).withUnsafeBufferPointer { v in
                try dst.withUnsafeMutableBytes { try FloatConversion.encode(v, as: .i32, into: $0, tensor: "i") }
            }
        }
        #expect(i32?.reason == "cannot write f32 values as I32")
    }

    @Test func emptyBuffersAreFine() throws {
        var out: [Float] = []
        try [UInt8]().withUnsafeBytes { src in try out.withUnsafeMutableBufferPointer { try FloatConversion.decode(.plain(.f16), src, into: $0) } }
        var dst: [UInt8] = []
        try out.withUnsafeBufferPointer { v in try dst.withUnsafeMutableBytes { try FloatConversion.encode(v, as: .bf16, into: $0) } }
    }

    /// A large tensor is decoded piece by piece, each piece's input bytes handed to `consumed` in order
    /// (quantize drops those pages, so a Q4_K_M of an F16 GGUF peaks below llama-quantize's RSS); the
    /// values equal a decode in one go, for a plain and a block type.
    @Test func floatsReportTheConsumedBytesInOrder() throws {
        let n = (1 << 21) + 3 * 32
        let values = (0..<n).map { Float(($0 &* 7919) % 2001) / 1000 - 1 }
        for type in [TensorType.plain(.f16), .block(.q8_0)] {
            let bytes = try values.withUnsafeBufferPointer { v -> [UInt8] in
                var out = [UInt8](repeating: 0, count: type.byteCount(elements: n)!)
                try out.withUnsafeMutableBytes { o in
                    if case .block(let g) = type { try GGMLQuantize.quantize(g, v, into: o) } else { try FloatConversion.encode(v, as: .f16, into: o) }
                }
                return out
            }
            try bytes.withUnsafeBytes { raw in
                let view = TensorView(info: TensorInfo(name: "w", type: type, shape: [n], byteCount: raw.count), bytes: raw, owner: nil)
                var ranges: [Range<Int>] = []
                let pieces = try FloatConversion.floats(view, consumed: { ranges.append($0) })
                #expect(pieces == (try FloatConversion.floats(view)), "\(type)")
                #expect(ranges.count == 3 && ranges.first?.lowerBound == 0 && ranges.last?.upperBound == raw.count, "\(type)")
                #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "\(type)")
            }
        }
    }
}

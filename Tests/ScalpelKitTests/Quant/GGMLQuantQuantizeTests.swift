import Foundation
import Testing
@testable import ScalpelKit

func ggmlQuantized(_ type: GGMLType, _ x: [Float], blocksPerChunk: Int = GGMLBlockChunks.blocksPerChunk) throws -> [UInt8] {
    var out = [UInt8](repeating: 0xEE, count: x.count / type.blockSize * type.typeSize)
    try x.withUnsafeBufferPointer { src in
        try out.withUnsafeMutableBytes { try GGMLQuantize.quantize(type, src, into: $0, blocksPerChunk: blocksPerChunk) }
    }
    return out
}

@Suite struct GGMLQuantQuantizeTests {
    /// gguf.quants.quantize on random normal, constant, zero, tiny, huge, negative-maximum, |max|-tie and
    /// rounding-tie inputs: the same bytes.
    @Test func matchesGGUFPyByteForByte() throws {
        let cases = try GGUFFixtures.json("quant_vectors.json").arrayValue!
        #expect(Set(cases.map { $0["type"]!.stringValue! }) == Set(GGMLQuantize.supportedTypes.map(\.name)))
        #expect(cases.count == 5 * 12)
        for c in cases {
            let type = GGMLType(name: c["type"]!.stringValue!)!
            let got = try ggmlQuantized(type, GGUFFixtures.floats(c["input"]!.stringValue!))
            let want = GGUFFixtures.hex(c["quantized"]!.stringValue!)
            let block = got.indices.first { got[$0] != want[$0] }.map { $0 / type.typeSize }
            #expect(got.count == want.count && block == nil, "\(type.name) \(c["case"]!.stringValue!): first differing block \(block ?? -1)")
        }
    }

    /// A literal scalar port of ggml's `quantize_row_*_ref` agrees on 6,000 varied blocks per type: normal
    /// values at scales from 1e-38 to 1e37, exact rounding ties, repeated and signed-zero values, ties of
    /// the largest magnitude, constants.
    @Test(arguments: GGMLQuantize.supportedTypes) func matchesScalarPortOfGGML(type: GGMLType) throws {
        var rng = TestRandom(seed: 1000 + UInt64(type.id))
        let x = GGMLReference.variedBlocks(count: 6_000, &rng)
        let got = try ggmlQuantized(type, x, blocksPerChunk: 1000)
        for b in 0..<(x.count / 32) {
            let block = Array(x[(b * 32)..<(b * 32 + 32)])
            let want = GGMLReference.quantize(type, block)
            let have = Array(got[(b * type.typeSize)..<((b + 1) * type.typeSize)])
            if have != want {
                Issue.record("\(type.name) block \(b): \(block) -> \(have), ggml \(want)")
                return
            }
        }
    }

    /// Chunks (several, one partial), scale batches and single blocks all give the same bytes.
    @Test(arguments: GGMLQuantize.supportedTypes) func chunkingDoesNotChangeResults(type: GGMLType) throws {
        var rng = TestRandom(seed: 42 + UInt64(type.id))
        let blocks = GGMLBlockChunks.scaleBatch * 3 + 17
        let x = (0..<(blocks * 32)).map { _ in Float(Int64(bitPattern: rng.next()) >> 40) / Float(1 << 20) }
        let whole = try ggmlQuantized(type, x, blocksPerChunk: GGMLBlockChunks.scaleBatch + 5)
        #expect(try ggmlQuantized(type, x) == whole)
        for b in [0, 255, 256, blocks - 1] {
            let one = try ggmlQuantized(type, Array(x[(b * 32)..<((b + 1) * 32)]))
            #expect(Array(whole[(b * type.typeSize)..<((b + 1) * type.typeSize)]) == one, "block \(b)")
        }
    }

    /// Where ggml and gguf-py disagree (signed zeros), Scalpel follows ggml's sequential scan.
    @Test func signedZerosFollowGGML() throws {
        // Q4_0, all -0: ggml keeps max = +0 (no |x| > 0), so d = +0 / -8 = -0 (gguf-py stores +0).
        let q4_0 = try ggmlQuantized(.q4_0, [Float](repeating: -0.0, count: 32))
        #expect(q4_0 == [0x00, 0x80] + [UInt8](repeating: 0x88, count: 16))
        // Q4_1: the first of equal values wins, so min = max = -0 here: d = +0, m = -0.
        let q4_1 = try ggmlQuantized(.q4_1, [-0.0] + [Float](repeating: 0, count: 31))
        #expect(q4_1 == [0x00, 0x00, 0x00, 0x80] + [UInt8](repeating: 0, count: 16))
        let q4_1b = try ggmlQuantized(.q4_1, [0.0] + [Float](repeating: -0.0, count: 31))
        #expect(q4_1b == [UInt8](repeating: 0, count: 20))
    }

    /// Q4_0 picks the first element of largest magnitude, whatever its sign.
    @Test func q4_0ScaleTakesTheFirstLargestMagnitude() throws {
        var x = [Float](repeating: 1, count: 32)
        x[3] = 4; x[20] = -4
        let first = try ggmlQuantized(.q4_0, x)   // max = 4: d = -0.5 -> f16 0xB800
        #expect(first[0] == 0x00 && first[1] == 0xB8)
        x[3] = -4; x[20] = 4
        let second = try ggmlQuantized(.q4_0, x)  // max = -4: d = 0.5 -> f16 0x3800
        #expect(second[0] == 0x00 && second[1] == 0x38)
        // id = 2. x = 1: trunc(2 + 8.5) = 10; x[3] = -4: trunc(-8 + 8.5) = 0; x[20] = 4: 16 -> clamped to 15.
        // Byte j holds element j (low nibble) and j + 16 (high nibble).
        var qs = [UInt8](repeating: 0xAA, count: 16)
        qs[3] = 0xA0
        qs[4] = 0xFA
        #expect(Array(second[2...]) == qs)
    }

    @Test func rejectsNonFiniteInputs() {
        for (bad, text) in [(Float.nan, "nan"), (.infinity, "inf"), (-.infinity, "-inf")] {
            var x = [Float](repeating: 0.5, count: 96)
            x[40] = bad
            for type in GGMLQuantize.supportedTypes {
                #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "value \(text) at index 40 is not finite; \(type.name) quantization needs finite values")) {
                    _ = try ggmlQuantized(type, x)
                }
            }
        }
    }

    @Test func rejectsUnsupportedTypesAndSizes() {
        let x = [Float](repeating: 1, count: 32)
        var out = [UInt8](repeating: 0, count: 34)
        x.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBytes { dst in
                #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "quantizing to MXFP4 is not supported (supported: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1)")) {
                    try GGMLQuantize.quantize(GGMLType(name: "MXFP4")!, src, into: dst)
                }
                #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "31 values are not a whole number of 32-value Q8_0 blocks")) {
                    try GGMLQuantize.quantize(.q8_0, UnsafeBufferPointer(rebasing: src[0..<31]), into: dst)
                }
                #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "1 Q4_0 blocks take 18 bytes, but the output has 34")) {
                    try GGMLQuantize.quantize(.q4_0, src, into: dst)
                }
            }
        }
    }
}

/// A scalar transcription of ggml's reference quantizers (ggml-quants.c), with x86-64's float-to-integer
/// conversion (truncation; 0 when the value is NaN or outside the int32 range).
enum GGMLReference {
    static func quantize(_ type: GGMLType, _ x: [Float]) -> [UInt8] {
        switch type {
        case .q8_0: return q8_0(x)
        case .q4_0: return qx_0(x, divisor: -8, offset: 8.5, limit: 15)
        case .q5_0: return qx_0(x, divisor: -16, offset: 16.5, limit: 31)
        case .q4_1: return qx_1(x, levels: 15)
        case .q5_1: return qx_1(x, levels: 31)
        default: fatalError("no reference for \(type.name)")
        }
    }

    /// `(int8_t)v` as x86-64 computes it (cvttss2si, then the low byte).
    static func x86Int8(_ v: Float) -> Int8 {
        guard v.isFinite, v >= -2_147_483_648, v < 2_147_483_648 else { return 0 }
        return Int8(truncatingIfNeeded: Int32(v.rounded(.towardZero)))
    }

    static func f16(_ v: Float) -> [UInt8] {
        let h = Float16(v).bitPattern
        return [UInt8(h & 0xFF), UInt8(h >> 8)]
    }

    static func q8_0(_ x: [Float]) -> [UInt8] {
        var amax: Float = 0
        for v in x { amax = amax > abs(v) ? amax : abs(v) }  // MAX(amax, fabsf(v))
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        return f16(d) + x.map { UInt8(bitPattern: x86Int8(($0 * id).rounded(.toNearestOrAwayFromZero))) }
    }

    /// Q4_0 and Q5_0.
    static func qx_0(_ x: [Float], divisor: Float, offset: Float, limit: Int8) -> [UInt8] {
        var amax: Float = 0, max: Float = 0
        for v in x where amax < abs(v) { amax = abs(v); max = v }
        let d = max / divisor
        let id: Float = d != 0 ? 1 / d : 0
        let q = x.map { UInt8(bitPattern: Swift.min(limit, x86Int8($0 * id + offset))) }
        return f16(d) + pack(q, fiveBit: limit == 31)
    }

    /// Q4_1 (clamped to 15) and Q5_1 (not clamped).
    static func qx_1(_ x: [Float], levels: Float) -> [UInt8] {
        var min = Float.greatestFiniteMagnitude, max = -Float.greatestFiniteMagnitude
        for v in x {
            if v < min { min = v }
            if v > max { max = v }
        }
        let d = (max - min) / levels
        let id: Float = d != 0 ? 1 / d : 0
        let q = x.map { v -> UInt8 in
            let raw = x86Int8((v - min) * id + 0.5)
            return levels == 15 ? UInt8(bitPattern: Swift.min(15, raw)) : UInt8(bitPattern: raw)
        }
        return f16(d) + f16(min) + pack(q, fiveBit: levels == 31)
    }

    /// qs (element j low nibble, j + 16 high), preceded for 5-bit types by qh (bit 4 of element j at bit j).
    static func pack(_ q: [UInt8], fiveBit: Bool) -> [UInt8] {
        let qs = (0..<16).map { (q[$0] & 0x0F) | (q[$0 + 16] & 0x0F) << 4 }
        guard fiveBit else { return qs }
        var qh: UInt32 = 0
        for j in 0..<32 where q[j] & 0x10 != 0 { qh |= 1 << j }
        return [UInt8(qh & 0xFF), UInt8((qh >> 8) & 0xFF), UInt8((qh >> 16) & 0xFF), UInt8(qh >> 24)] + qs
    }

    /// `count` blocks of 32 values, cycling through kinds of blocks that exercise every branch.
    static func variedBlocks(count: Int, _ rng: inout TestRandom) -> [Float] {
        func uniform() -> Float { Float(rng.next() >> 40) / Float(1 << 24) }
        func normal() -> Float {
            let u = max(uniform(), 1e-7), v = uniform()
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
        let scales: [Float] = [1e-38, 3e-37, 1e-30, 1e-8, 1e-3, 0.37, 1, 1e3, 1e20, 1e30, 1e37]
        var x: [Float] = []
        x.reserveCapacity(count * 32)
        for b in 0..<count {
            let scale = scales[Int(rng.next() % UInt64(scales.count))]
            var block: [Float]
            switch b % 6 {
            case 0:  // normal values
                block = (0..<32).map { _ in normal() * scale }
            case 1:  // halves and integers on a power-of-two grid: exact rounding ties
                let grid = Float(sign: .plus, exponent: Int(rng.next() % 16) - 8, significand: 1)
                block = (0..<32).map { _ in Float(Int(rng.next() % 64) - 32) / 2 * grid }
            case 2:  // few distinct values, zeros of both signs
                let values: [Float] = [0, -0.0, scale, -scale, 0.5 * scale]
                block = (0..<32).map { _ in values[Int(rng.next() % UInt64(values.count))] }
            case 3:  // the largest magnitude twice, with both signs, in random places
                block = (0..<32).map { _ in (uniform() * 2 - 1) * scale }
                let i = Int(rng.next() % 32), j = Int(rng.next() % 32)
                block[i] = 1.5 * scale
                block[j] = -1.5 * scale
            case 4:  // a constant, every other time a zero of either sign
                let zero: Float = rng.next() % 2 == 0 ? 0 : -0.0
                block = [Float](repeating: b % 12 == 4 ? zero : normal() * scale, count: 32)
            default:  // only non-negative or only non-positive values
                let sign: Float = rng.next() % 2 == 0 ? 1 : -1
                block = (0..<32).map { _ in sign * abs(normal()) * scale * (rng.next() % 4 == 0 ? 0 : 1) }
            }
            x += block
        }
        return x
    }
}

import Foundation
import Testing
@testable import ScalpelKit

/// The reference vectors of `fixtures/bnb/bnb_vectors.json` (made by `make_bnb_vectors.py`, checked
/// there against bitsandbytes 0.50.2 and compressed-tensors 0.20.0).
enum BnbVectors {
    static let root: JSONValue = {
        let url = repositoryRoot.appendingPathComponent("fixtures/bnb/bnb_vectors.json")
        return try! JSONParser.parse(String(contentsOf: url, encoding: .utf8))
    }()

    /// The fixture generator: splitmix64, four 16-bit fields summed minus 131070, / 32768 (exact f32).
    static func values(seed: UInt64, count: Int) -> [Float] {
        var s = seed
        return (0..<count).map { _ in
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            let total = (0..<4).reduce(0) { $0 + Int((z >> (16 * UInt64($1))) & 0xFFFF) } - 131_070
            return Float(total) / 32768
        }
    }

    static func floats(_ v: JSONValue?) -> [Float] { v!.arrayValue!.map { Float(bitPattern: UInt32($0.intValue!)) } }
    static func ints(_ v: JSONValue?) -> [Int] { v!.arrayValue!.map { $0.intValue! } }
    static func hex(_ v: JSONValue?) -> [UInt8] {
        let s = Array(v!.stringValue!.utf8)
        return stride(from: 0, to: s.count, by: 2).map { UInt8(String(decoding: s[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
    }
}

/// Standard normal samples (Box-Muller over a splitmix64 stream), for accuracy checks.
func normalSamples(_ count: Int, seed: UInt64 = 42) -> [Float] {
    var s = seed
    func next() -> Double {
        s &+= 0x9E37_79B9_7F4A_7C15
        var z = s
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) * 0x1p-53
    }
    return (0..<count).map { _ in Float((-2 * log(1 - next())).squareRoot() * cos(2 * Double.pi * next())) }
}

/// Bit patterns, so that NaN compares equal to itself and -0 differs from 0.
func bitPatterns(_ a: [Float]) -> [UInt32] { a.map(\.bitPattern) }

@Suite struct FourBitTests {
    func quantize(_ x: [Float], _ kind: FourBitKind, _ blockSize: Int, doubleQuant: Bool = false) throws -> FourBitQuantized {
        try x.withUnsafeBufferPointer { try FourBit.quantize($0, kind: kind, blockSize: blockSize, doubleQuant: doubleQuant) }
    }

    func dequantize(_ q: FourBitQuantized) -> [Float] {
        var out = [Float](repeating: 0, count: q.count)
        out.withUnsafeMutableBufferPointer { FourBit.dequantize(q, into: $0) }
        return out
    }

    @Test func codesAndAbsmaxMatchBitsandbytesByteForByte() throws {
        let cases = BnbVectors.root["four_bit"]!.arrayValue!
        #expect(cases.count == 18)
        for c in cases {
            let name = c["name"]!.stringValue!
            let kind = FourBitKind(rawValue: c["kind"]!.stringValue!)!
            let x = c["input"] != nil ? BnbVectors.floats(c["input"])
                : BnbVectors.values(seed: UInt64(c["seed"]!.intValue!), count: c["count"]!.intValue!)
            let q = try quantize(x, kind, c["blocksize"]!.intValue!)
            #expect(q.codes == BnbVectors.hex(c["codes"]), "\(name): codes")
            #expect(bitPatterns(q.absmax) == bitPatterns(BnbVectors.floats(c["absmax"])), "\(name): absmax")
            #expect(q.codes.count == (x.count + 1) / 2)
        }
    }

    @Test func quantMapsAreBitsandbytesTables() {
        #expect(FourBitKind.nf4.quantMap[7] == 0 && FourBitKind.nf4.quantMap.count == 16)
        #expect(FourBitKind.nf4.quantMap == FourBitKind.nf4.quantMap.sorted())
        let fp4 = FourBitKind.fp4.quantMap.map(\.bitPattern)
        #expect(fp4[0] == 0 && fp4[8] == 0, "both FP4 zeros are +0.0 in bitsandbytes' table")
        #expect(fp4[1] == 0x3BAA_AAAB && fp4[3] == 0x3F80_0000 && fp4[11] == 0xBF80_0000 && fp4[15] == 0xBE80_0000)
        // NF4 boundaries equal the pivots of bitsandbytes' CUDA dQuantizeNF4.
        let cudaPivots: [UInt32] = [0xBF59_1CD8, 0xBF1C_5270, 0xBEEB_8480, 0xBEAD_EA76, 0xBE70_3CEC, 0xBE0D_38BC,
                                    0xBD3A_7871, 0x3D22_FAFF, 0x3DF6_4862, 0x3E50_67E0, 0x3E95_82D4, 0x3EC7_53F9,
                                    0x3F00_6D04, 0x3F24_8DAF, 0x3F5C_89DA]
        #expect(FourBitKind.nf4.boundaries.map(\.bitPattern) == cudaPivots)
    }

    @Test func midpointTiesTakeTheLowerCode() throws {
        for kind in FourBitKind.allCases {
            let sorted = kind.bucketCodes.map { kind.quantMap[Int($0)] }
            var x: [Float] = [1]
            for b in kind.boundaries { x.append(b) }
            while x.count < 64 { x.append(0.5) }
            let q = try quantize(x, kind, 64)
            for (k, b) in kind.boundaries.enumerated() where b != 0 {
                let i = k + 1
                let nibble = i % 2 == 0 ? q.codes[i / 2] >> 4 : q.codes[i / 2] & 15
                #expect(kind.quantMap[Int(nibble)] == sorted[k], "\(kind) boundary \(k) takes the lower value")
            }
        }
    }

    @Test func zeroBlocksAndOddPadding() throws {
        let zeros = [Float](repeating: 0, count: 64 + 5)
        let nf4 = try quantize(zeros, .nf4, 64)
        #expect(nf4.codes == [UInt8](repeating: 0x77, count: 35))
        #expect(nf4.absmax[0] == 0 && nf4.absmax[1] == Float(1e-38), "short last block stores the clamped absmax")
        #expect(dequantize(nf4).allSatisfy { $0 == 0 })
        let fp4 = try quantize([1, 0.5, 0.25], .fp4, 32)
        #expect(fp4.codes == [0x35, 0x70], "FP4 1 -> 3, 0.5 -> 5, 0.25 -> 7, pad 0")
    }

    @Test func roundTripErrorOnNormalData() throws {
        let x = normalSamples(1 << 20)
        for (kind, lo, hi) in [(FourBitKind.nf4, 0.0915, 0.0925), (.fp4, 0.1214, 0.1224)] {
            let q = try quantize(x, kind, 64)
            let y = dequantize(q)
            let e = x.withUnsafeBufferPointer { a in y.withUnsafeBufferPointer { QuantError.measure(original: a, reconstructed: $0) } }
            #expect(e.relativeRMSE > lo && e.relativeRMSE < hi, "\(kind) relative RMSE \(e.relativeRMSE)")
        }
        // Larger blocks are coarser: NF4 at 4096 is well above the 64 figure.
        let coarse = try quantize(x, .nf4, 4096)
        let y = dequantize(coarse)
        let e = x.withUnsafeBufferPointer { a in y.withUnsafeBufferPointer { QuantError.measure(original: a, reconstructed: $0) } }
        #expect(e.relativeRMSE > 0.11 && e.relativeRMSE < 0.14)
    }

    @Test func dequantizeIsCodeTimesAbsmax() throws {
        let x = BnbVectors.values(seed: 1, count: 201)
        let q = try quantize(x, .nf4, 64)
        let y = dequantize(q)
        for i in [0, 1, 63, 64, 127, 200] {
            let nibble = i % 2 == 0 ? q.codes[i / 2] >> 4 : q.codes[i / 2] & 15
            #expect(y[i] == FourBitKind.nf4.quantMap[Int(nibble)] * q.absmax[i / 64])
        }
        #expect(y[0].sign == x[0].sign || y[0] == 0)
    }

    @Test func resultDoesNotDependOnChunking() throws {
        // 1 MiB of values spans many parallel chunks; quantizing any slice of whole blocks gives the
        // same bytes as the corresponding part of the whole.
        let x = normalSamples(1 << 18, seed: 9)
        let whole = try quantize(x, .fp4, 128)
        let part = try quantize(Array(x[(128 * 1000)..<(128 * 1300)]), .fp4, 128)
        #expect(Array(whole.codes[(64 * 1000)..<(64 * 1300)]) == part.codes)
        #expect(Array(whole.absmax[1000..<1300]) == part.absmax)
    }

    @Test func rejectsBadBlockSizes() {
        for b in [0, 16, 48, 8192] {
            #expect(throws: ScalpelError.self) { try quantize([1, 2], .nf4, b) }
        }
    }

    @Test func dynamicMapIsBitsandbytesTable() {
        let expected = BnbVectors.floats(BnbVectors.root["dynamic_map"])
        #expect(expected.count == 256)
        #expect(bitPatterns(FourBitDynamicMap.values) == bitPatterns(expected))
        #expect(FourBitDynamicMap.values[0] == -0.99296875 && FourBitDynamicMap.values[127] == 0 && FourBitDynamicMap.values[255] == 1)
    }

    @Test func nestedAbsmaxMatchesReference() throws {
        let n = BnbVectors.root["nested"]!
        let absmax = BnbVectors.floats(n["absmax"])
        #expect(absmax.count == 600)
        // The 4-bit absmax of the generated tensor are bitsandbytes' own.
        let q = try quantize(BnbVectors.values(seed: 8, count: n["count"]!.intValue!), .nf4, 64, doubleQuant: true)
        #expect(bitPatterns(q.absmax) == bitPatterns(absmax))
        // With bitsandbytes' offset, codes (CUDA rule) and nested absmax match byte for byte.
        let offset = Float(bitPattern: UInt32(n["offset"]!.intValue!))
        let nested = NestedAbsmax.quantize(absmax, offset: offset)
        #expect(nested.codes == BnbVectors.hex(n["codes"]))
        #expect(bitPatterns(nested.absmax) == bitPatterns(BnbVectors.floats(n["nested_absmax"])))
        #expect(nested.absmax.count == 3)
        if n["library_codes"] != nil {
            #expect(nested.codes == BnbVectors.hex(n["library_codes"]), "bitsandbytes' CPU table agrees on these")
        }
        // Our f64 mean is within one f32 ulp of torch's f32 mean.
        let mean = try #require(q.nested).offset
        #expect(abs(mean - offset) <= offset.ulp)
        // Dequantized absmax stay within half a code step of the originals.
        let back = nested.dequantize()
        for (a, b) in zip(absmax, back) { #expect(abs(a - b) < 0.02 * a) }
    }

    @Test func nestedDequantizeFormula() {
        let nested = NestedAbsmax(codes: [0, 127, 255], absmax: [2], offset: 3)
        #expect(nested.dequantize() == [-0.99296875 * 2 + 3, 3, 5])
        let flat = NestedAbsmax.quantize([2.5, 2.5, 2.5])
        #expect(flat.offset == 2.5 && flat.codes == [0, 0, 0] && flat.absmax == [0])
        #expect(flat.dequantize() == [2.5, 2.5, 2.5])
    }

    @Test func quantStateJSONIsBitsandbytesBytes() throws {
        let n = BnbVectors.root["nested"]!
        let absmax = BnbVectors.floats(n["absmax"])
        let offset = Float(bitPattern: UInt32(n["offset"]!.intValue!))
        let q = FourBitQuantized(kind: .nf4, blockSize: 64, count: 38400, codes: [], absmax: absmax,
                                 nested: NestedAbsmax.quantize(absmax, offset: offset))
        if let expected = n["library_quant_state"]?.stringValue {
            #expect(String(decoding: try FourBitQuantState.json(for: q, dtype: .f32, shape: [38400]), as: UTF8.self) == expected)
        }
        let plain = FourBitQuantized(kind: .fp4, blockSize: 128, count: 4096 * 11008, codes: [], absmax: [], nested: nil)
        #expect(String(decoding: try FourBitQuantState.json(for: plain, dtype: .bf16, shape: [11008, 4096]), as: UTF8.self)
            == #"{"quant_type": "fp4", "blocksize": 128, "dtype": "bfloat16", "shape": [11008, 4096]}"#)
        #expect(FourBitQuantState.tensorSuffix(.nf4) == "quant_state.bitsandbytes__nf4")
        #expect(throws: ScalpelError.self) { try FourBitQuantState.json(for: plain, dtype: .f16, shape: [3]) }
        #expect(throws: ScalpelError.self) { try FourBitQuantState.json(for: plain, dtype: .i8, shape: [11008, 4096]) }
    }
}

@Suite struct FourBitQuantStateNumberTests {
    /// `nested_offset` must print as Python's `json.dumps(float(offset))` for the bytes to match.
    @Test func offsetsPrintAsPythonRepr() {
        let cases = BnbVectors.root["python_float_repr"]!.arrayValue!
        #expect(cases.count == 47)
        for c in cases {
            let pair = c.arrayValue!
            let value = Double(Float(bitPattern: UInt32(pair[0].intValue!)))
            #expect(JSONWriter.string(.double(value), style: .python) == pair[1].stringValue!)
        }
    }
}

import Foundation
import Testing
@testable import ScalpelKit
import CScalpelKernels

/// The matrix scripts/ggml_quant_harness.c `bench` generates: xorshift64*, uniform in [-1, 1).
func kquantHarnessMatrix(count: Int) -> [Float] {
    var s: UInt64 = 0x9E37_79B9_7F4A_7C15
    return (0..<count).map { _ in
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27
        let r = s &* 0x2545_F491_4F6C_DD1D
        return Float(Double(r >> 40) / Double(1 << 24) * 2.0 - 1.0)
    }
}

func kquantBytes(_ type: GGMLType, _ x: [Float], rowLength: Int, importance: [Float]? = nil, blocksPerChunk: Int = KQuant.blocksPerChunk) throws -> [UInt8] {
    var out = [UInt8](repeating: 0xAA, count: x.count / 256 * type.typeSize)
    try x.withUnsafeBufferPointer { v in
        try out.withUnsafeMutableBytes { o in
            if let importance {
                try importance.withUnsafeBufferPointer {
                    try KQuant.quantize(type, v, rowLength: rowLength, importance: $0, into: o, blocksPerChunk: blocksPerChunk)
                }
            } else {
                try KQuant.quantize(type, v, rowLength: rowLength, importance: nil, into: o, blocksPerChunk: blocksPerChunk)
            }
        }
    }
    return out
}

/// N(0, 1) values (Box-Muller).
func kquantNormals(_ n: Int, _ rng: inout TestRandom) -> [Float] {
    (0..<n).map { _ in
        let u = Double.random(in: Double.ulpOfOne..<1, using: &rng), v = Double.random(in: 0..<1, using: &rng)
        return Float((-2 * log(u)).squareRoot() * cos(2 * Double.pi * v))
    }
}

func fnv1a(_ bytes: [UInt8]) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h ^= UInt64(b); h = h &* 0x100_0000_01b3 }
    let s = String(h, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}

@Suite struct KQuantTests {
    /// FNV-1a of ggml's bytes for the harness matrix (4 rows of 512), without and with the importance
    /// weights (c % 7 + 1) / 4, from `ggml-quant-harness bench TYPE 4 512 1 1 [- IMATRIX.f32]` (llama.cpp
    /// vendored by llama-cpp-python 0.3.36; see scripts/llamacpp.sh).
    static let ggmlHashes: [(GGMLType, String, String)] = [
        (.q2_K, "abd1387b3cf10b7c", "bb174a5173114bf5"),
        (.q3_K, "81803b7db8f02507", "9db36373246ccb47"),
        (.q4_K, "0bfad43b89690af0", "8cb53a52db421c2c"),
        (.q5_K, "be2757fe12aa665b", "c37fd22c46a93eb6"),
        (.q6_K, "5c031ad28a49ccb3", "479485372483b028"),
    ]

    @Test func fixedVectorsMatchGGML() throws {
        let x = kquantHarnessMatrix(count: 4 * 512)
        let w = (0..<512).map { Float($0 % 7 + 1) / 4 }
        for (type, plain, weighted) in Self.ggmlHashes {
            #expect(fnv1a(try kquantBytes(type, x, rowLength: 512)) == plain, "\(type.name)")
            #expect(fnv1a(try kquantBytes(type, x, rowLength: 512, importance: w)) == weighted, "\(type.name) + imatrix")
        }
    }

    /// Chunks of 1 or 3 super-blocks (crossing rows of 2) give the bytes of one chunk, with and without
    /// weights; the column of each super-block's weights follows its place in its row.
    @Test(arguments: KQuant.supportedTypes) func chunkingDoesNotChangeBytes(type: GGMLType) throws {
        var rng = TestRandom(seed: 7)
        let x = kquantNormals(6 * 512, &rng)
        let w = (0..<512).map { _ in Float.random(in: 0..<1, using: &rng) }
        let one = try kquantBytes(type, x, rowLength: 512, blocksPerChunk: 1000)
        #expect(try kquantBytes(type, x, rowLength: 512, blocksPerChunk: 1) == one)
        #expect(try kquantBytes(type, x, rowLength: 512, blocksPerChunk: 3) == one)
        let oneW = try kquantBytes(type, x, rowLength: 512, importance: w, blocksPerChunk: 1000)
        #expect(try kquantBytes(type, x, rowLength: 512, importance: w, blocksPerChunk: 3) == oneW)
        #expect(oneW != one)
    }

    /// dequantize(quantize(x)) of N(0, 1) values: the relative RMSE of each type is in its expected band
    /// (more bits, less error), and the weighted path stays close to the plain one.
    @Test func roundTripErrorShrinksWithBits() throws {
        var rng = TestRandom(seed: 3)
        let x = kquantNormals(8 * 512, &rng)
        let bands: [(GGMLType, ClosedRange<Double>)] = [
            (.q2_K, 0.20...0.45), (.q3_K, 0.10...0.25), (.q4_K, 0.05...0.12), (.q5_K, 0.025...0.06), (.q6_K, 0.012...0.03),
        ]
        for (type, band) in bands {
            for weights in [nil, [Float](repeating: 1, count: 512)] {
                let bytes = try kquantBytes(type, x, rowLength: 512, importance: weights)
                let back = try ggmlDequantized(type, bytes)
                var err = 0.0, sig = 0.0
                for i in x.indices { err += Double(x[i] - back[i]) * Double(x[i] - back[i]); sig += Double(x[i]) * Double(x[i]) }
                let rel = (err / sig).squareRoot()
                #expect(band.contains(rel), "\(type.name) \(weights == nil ? "" : "+imatrix") relative RMSE \(rel)")
            }
        }
    }

    @Test(arguments: KQuant.supportedTypes) func allZerosStayZero(type: GGMLType) throws {
        let bytes = try kquantBytes(type, [Float](repeating: 0, count: 512), rowLength: 256)
        #expect(try ggmlDequantized(type, bytes).allSatisfy { $0 == 0 })
    }

    @Test func rejectsBadInput() throws {
        var x = [Float](repeating: 0.5, count: 512)
        x[300] = .nan
        #expect(throws: ScalpelError.self) { try kquantBytes(.q4_K, x, rowLength: 512) }
        x[300] = 1
        #expect(throws: ScalpelError.self) { try kquantBytes(.q4_K, x, rowLength: 384) }
        #expect(throws: ScalpelError.self) { try kquantBytes(.q4_K, x, rowLength: 512, importance: [Float](repeating: 1, count: 256)) }
        #expect(throws: ScalpelError.self) { try kquantBytes(.q4_K, x, rowLength: 512, importance: [Float](repeating: .infinity, count: 512)) }
        #expect(throws: ScalpelError.self) { try kquantBytes(.q8_0, x, rowLength: 512) }
        do {
            x[300] = .infinity
            _ = try kquantBytes(.q6_K, x, rowLength: 512)
            Issue.record("no error")
        } catch let ScalpelError.invalid(_, _, reason) {
            #expect(reason.contains("index 300"))
        }
    }

    /// llama.cpp's `llama_tensor_get_type` fallback when a row is not a multiple of 256.
    @Test func fallbackTypes() {
        #expect(KQuant.kQuantFallback(.q4_K, rowLength: 512) == .q4_K)
        #expect(KQuant.kQuantFallback(.q2_K, rowLength: 384) == .q4_0)
        #expect(KQuant.kQuantFallback(.q3_K, rowLength: 384) == .q4_0)
        #expect(KQuant.kQuantFallback(.q4_K, rowLength: 384) == .q5_0)
        #expect(KQuant.kQuantFallback(.q5_K, rowLength: 384) == .q5_1)
        #expect(KQuant.kQuantFallback(.q6_K, rowLength: 384) == .q8_0)
        #expect(KQuant.kQuantFallback(.iq4_xs, rowLength: 384) == .iq4_nl)
        #expect(KQuant.kQuantFallback(.q4_K, rowLength: 100) == .f16)
        #expect(KQuant.kQuantFallback(.q8_0, rowLength: 100) == .f16)
    }

    /// Q2_K/Q3_K dequantization of hand-made blocks: every field in its place.
    @Test func dequantizesHandMadeQ2Q3Blocks() throws {
        // Q2_K: d = 0.5, dmin = 0.25; sub-block 1 has scale 3, min 2; element 16 + 1 (half 0, k 0, l 17) = q 2.
        var q2 = [UInt8](repeating: 0, count: 84)
        q2[1] = 3 | (2 << 4)
        q2[16 + 17] = 2
        q2[80] = 0x00; q2[81] = 0x38  // f16 0.5
        q2[82] = 0x00; q2[83] = 0x34  // f16 0.25
        let v2 = try ggmlDequantized(.q2_K, q2)
        #expect(v2[17] == 0.5 * 3 * 2 - 0.25 * 2)
        #expect(v2[16] == -0.5)
        #expect(v2[0] == 0)
        // Q3_K: d = 2; sub-block 0 scale 33 (stored +32 -> 1); element 0 with hmask bit set and q 3 -> 3.
        var q3 = [UInt8](repeating: 0, count: 110)
        q3[96] = 1  // low nibble of scale 0 = 1; high bits (byte 104) 0 -> scale 1 - 32 = -31
        q3[104] = 2  // scale 0 high bits = 2 -> 1 | 32 = 33 -> 1
        q3[0] = 1  // hmask bit 0 of element 0
        q3[32] = 3  // element 0: q 3
        q3[108] = 0x00; q3[109] = 0x40  // f16 2
        let v3 = try ggmlDequantized(.q3_K, q3)
        #expect(v3[0] == 2 * 1 * 3)
        #expect(v3[1] == 2 * 1 * -4)  // hmask clear: q 0 - 4
    }

    /// The C scale searches of Q3_K and Q6_K (CScalpelKernels/KQuantSearch.c) give the same bits in their
    /// AVX2 variant (what this machine runs) and their baseline one, on lanes with all-zero, tiny, integer
    /// (rounding ties) and wide values, with and without weights.
    @Test func searchKernelsSameBitsOnEveryISA() {
        typealias V = SIMD16<Float>
        var rng = TestRandom(seed: 17)
        let x = UnsafeMutablePointer<V>.allocate(capacity: 16), w = UnsafeMutablePointer<V>.allocate(capacity: 16)
        let l1 = UnsafeMutablePointer<V>.allocate(capacity: 16), l2 = UnsafeMutablePointer<V>.allocate(capacity: 16)
        defer { x.deallocate(); w.deallocate(); l1.deallocate(); l2.deallocate() }
        func bits(_ p: UnsafeMutablePointer<V>) -> [UInt32] { (0..<16).flatMap { i in (0..<16).map { p[i][$0].bitPattern } } }
        for round in 0..<40 {
            let normals = kquantNormals(256, &rng)
            for i in 0..<16 {
                for j in 0..<16 {
                    var v = normals[16 * i + j] * Float(1 + round % 5)
                    switch j {
                    case 0: v = 0
                    case 1: v *= 1e-17
                    case 2: v = Float(Int(v * 3)) / 2
                    case 3: v *= 1e4
                    default: break
                    }
                    x[i][j] = v
                    w[i][j] = j == 4 ? 0 : Float.random(in: 0..<2, using: &rng)
                }
            }
            for nmax: Int32 in [4, 32] {
                for weights in [nil, UnsafePointer(w)] {
                    let a = KQuantLanes.searchSymmetric(n: 16, nmax: nmax, x: x, w: weights, L: l1, portable: true)
                    let b = KQuantLanes.searchSymmetric(n: 16, nmax: nmax, x: x, w: weights, L: l2)
                    #expect(a == b && bits(l1) == bits(l2), "make_qx_quants nmax \(nmax) weights \(weights != nil)")
                }
            }
            let a = KQuantLanes.searchQ3(n: 16, nmax: 4, x: x, L: l1, portable: true)
            let b = KQuantLanes.searchQ3(n: 16, nmax: 4, x: x, L: l2)
            #expect(a == b && bits(l1) == bits(l2), "make_q3_quants")
            let xs = (0..<16).map { x[$0][5 + round % 11] }, ws = (0..<16).map { w[$0][6] }
            var la = [Int8](repeating: 0, count: 16), lb = la
            let sa = scalpel_kq_search_symmetric1(16, 32, xs, ws, &la, 1)
            let sb = scalpel_kq_search_symmetric1(16, 32, xs, ws, &lb, 0)
            #expect(sa.bitPattern == sb.bitPattern && la == lb, "make_qx_quants one group")
        }
    }
}

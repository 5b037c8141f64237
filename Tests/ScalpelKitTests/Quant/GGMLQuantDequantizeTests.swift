import Foundation
import Testing
@testable import ScalpelKit

/// Index of the first value whose bits differ (NaN matches any NaN), or nil when all agree.
func firstGGMLBitMismatch(_ a: [Float], _ b: [Float]) -> Int? {
    if a.count != b.count { return min(a.count, b.count) }
    return a.indices.first { a[$0].bitPattern != b[$0].bitPattern && !(a[$0].isNaN && b[$0].isNaN) }
}

func ggmlDequantized(_ type: GGMLType, _ bytes: [UInt8], blocksPerChunk: Int = GGMLBlockChunks.blocksPerChunk) throws -> [Float] {
    var out = [Float](repeating: .nan, count: bytes.count / type.typeSize * type.blockSize)
    try bytes.withUnsafeBytes { src in
        try out.withUnsafeMutableBufferPointer { try GGMLDequantize.dequantize(type, src, into: $0, blocksPerChunk: blocksPerChunk) }
    }
    return out
}

@Suite struct GGMLQuantDequantizeTests {
    /// Random blocks (scales patched to finite f16) dequantized by gguf-py, all supported types.
    @Test func matchesGGUFPyOnRandomBlocks() throws {
        let cases = try GGUFFixtures.json("dequant_vectors.json").arrayValue!
        #expect(Set(cases.map { $0["type"]!.stringValue! }) == Set(GGMLDequantize.supportedTypes.map(\.name)))
        for c in cases {
            let type = GGMLType(name: c["type"]!.stringValue!)!
            let got = try ggmlDequantized(type, GGUFFixtures.hex(c["data"]!.stringValue!))
            let want = GGUFFixtures.floats(c["dequantized"]!.stringValue!)
            #expect(got.count == c["blocks"]!.intValue! * type.blockSize)
            #expect(firstGGMLBitMismatch(got, want) == nil, "\(type.name)")
        }
    }

    /// The quantized outputs of gguf-py's quantizers (incl. infinite scales from 1e30 inputs).
    @Test func matchesGGUFPyOnQuantizedVectors() throws {
        for c in try GGUFFixtures.json("quant_vectors.json").arrayValue! {
            let type = GGMLType(name: c["type"]!.stringValue!)!
            let got = try ggmlDequantized(type, GGUFFixtures.hex(c["quantized"]!.stringValue!))
            let want = GGUFFixtures.floats(c["dequantized"]!.stringValue!)
            #expect(firstGGMLBitMismatch(got, want) == nil, "\(type.name) \(c["case"]!.stringValue!)")
        }
    }

    @Test func dequantizesTensorsOfAGGUFPyFile() throws {
        let ckpt = try CheckpointReader.open(GGUFFixtures.path("all_types.gguf"))
        let expected = try GGUFFixtures.json("all_types.json").arrayValue![0]["tensors"]!.arrayValue!
        var checked = 0
        for e in expected {
            guard let want = e["dequantized"]?.stringValue, case .block(let type) = ckpt.info(named: e["name"]!.stringValue!)!.type else { continue }
            let got = try ggmlDequantized(type, Array(try ckpt.view(e["name"]!.stringValue!).bytes))
            #expect(firstGGMLBitMismatch(got, GGUFFixtures.floats(want)) == nil, "\(type.name)")
            checked += 1
        }
        #expect(checked == 5)
    }

    /// Many chunks (and a partial one), each of several scale batches, give the same values as one block at
    /// a time.
    @Test(arguments: GGMLDequantize.supportedTypes) func chunkingDoesNotChangeResults(type: GGMLType) throws {
        let blocks = GGMLBlockChunks.scaleBatch * 3 + 17
        var rng = TestRandom(seed: UInt64(type.id))
        var bytes = (0..<(blocks * type.typeSize)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let halfFields: [Int] = type == .q6_K ? [208] : type == .q2_K ? [80, 82] : type == .q3_K ? [108]
            : [.q4_1, .q5_1, .q4_K, .q5_K].contains(type) ? [0, 2] : [0]
        for b in 0..<blocks {
            for f in halfFields {  // finite scales: exponent field below 31
                bytes[b * type.typeSize + f + 1] &= 0x7B
            }
        }
        let whole = try ggmlDequantized(type, bytes, blocksPerChunk: GGMLBlockChunks.scaleBatch + 5)
        for b in [0, 1, blocks / 2, blocks - 1] {
            let one = try ggmlDequantized(type, Array(bytes[(b * type.typeSize)..<((b + 1) * type.typeSize)]))
            #expect(firstGGMLBitMismatch(Array(whole[(b * type.blockSize)..<((b + 1) * type.blockSize)]), one) == nil)
        }
        #expect(whole.allSatisfy { $0.isFinite })
    }

    @Test func rejectsUnsupportedTypesAndSizes() {
        var out = [Float](repeating: 0, count: 32)
        let bytes = [UInt8](repeating: 0, count: 34)
        bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { dst in
                #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "dequantizing MXFP4 is not supported (supported: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS)")) {
                    try GGMLDequantize.dequantize(GGMLType(name: "MXFP4")!, UnsafeRawBufferPointer(rebasing: src[0..<17]), into: dst)
                }
                #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "33 bytes are not a whole number of 34-byte Q8_0 blocks")) {
                    try GGMLDequantize.dequantize(.q8_0, UnsafeRawBufferPointer(rebasing: src[0..<33]), into: dst)
                }
                #expect(throws: ScalpelError.invalid(file: nil, tensor: nil, reason: "1 Q8_0 blocks hold 32 values, but the output has room for 31")) {
                    try GGMLDequantize.dequantize(.q8_0, src, into: UnsafeMutableBufferPointer(rebasing: dst[0..<31]))
                }
            }
        }
    }
}


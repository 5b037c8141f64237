import Foundation
import Testing
@testable import ScalpelKit

@Suite struct GGUFWriterTests {
    private func temporaryPath(_ name: String) -> String {
        NSTemporaryDirectory() + "scalpel-gguf-\(UInt32.random(in: 0...UInt32.max))-\(name)"
    }

    /// A tensor whose bytes are computed: byte i = (i * 7 + seed) & 0xFF.
    private func computed(_ name: String, _ type: TensorType, _ shape: [Int], seed: UInt8 = 1) -> OutputTensor {
        OutputTensor(name: name, type: type, shape: shape, content: .filling { buf in
            for i in 0..<buf.count { buf[i] = UInt8(truncatingIfNeeded: i &* 7) &+ seed }
        })
    }

    /// Rewriting a gguf-py file from its own tensors and metadata reproduces it byte for byte.
    @Test(arguments: ["all_types.gguf", "aligned64.gguf"]) func reproducesGGUFPyByteForByte(name: String) throws {
        let input = try CheckpointReader.open(GGUFFixtures.path(name))
        let out = temporaryPath(name)
        defer { unlink(out) }
        let tensors = try input.tensors.map { OutputTensor(copying: try input.view($0.name)) }
        try GGUFWriter.write(tensors, metadata: input.metadata, alignment: input.alignment!, to: out)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == Data(try GGUFFixtures.bytes(name)))
    }

    @Test func roundTripsEveryTypeAndMetadata() throws {
        let tensors = [
            computed("token_embd.weight", .plain(.f16), [3, 5]),
            computed("blk.0.attn_q.weight", .block(.q8_0), [2, 64]),
            computed("blk.0.ffn_up.weight", .block(.q4_1), [1, 1, 32]),
            computed("norm", .plain(.f32), [7]),
            computed("scalar", .plain(.i64), []),
            computed("bf", .plain(.bf16), [2, 2, 2, 2]),
            computed("k", .block(GGMLType(name: "Q6_K")!), [256]),
        ]
        let metadata = GGUFReaderTests.expectedMetadata.merging([("t.empty", .array(elementType: 4, []))])
        for zstd in [nil, 3] as [Int?] {
            let out = temporaryPath(zstd == nil ? "rt.gguf" : "rt.gguf.zst")
            defer { unlink(out) }
            try GGUFWriter.write(tensors, metadata: metadata, to: out, zstdLevel: zstd)
            let back = try CheckpointReader.open(out)
            #expect(back.format == .gguf && back.compressed == (zstd != nil))
            #expect(back.metadata == metadata)
            #expect(back.alignment == 32)
            #expect(back.tensors.map(\.name) == tensors.map(\.name))
            #expect(back.tensors.map(\.type) == tensors.map(\.type))
            #expect(back.tensors.map(\.shape) == tensors.map(\.shape))
            for t in tensors {
                let bytes = Array(try back.view(t.name).bytes)
                #expect(bytes.count == t.byteCount)
                #expect(bytes == (0..<t.byteCount).map { UInt8(truncatingIfNeeded: $0 &* 7) &+ 1 }, "\(t.name)")
            }
            if zstd == nil {
                // Each tensor padded to 32 bytes, the last one too.
                let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: out)))
                let h = try file.withUnsafeBytes { try GGUFReader.parse($0, fileLength: $0.count, file: out) }
                #expect(h.dataStart % 32 == 0)
                #expect(h.tensors.map(\.offset) == [0, 32, 192, 224, 256, 288, 320])
                #expect(file.count == h.dataStart + 320 + 224)
            }
        }
    }

    /// A compressed file whose header is far larger than the first 64 KiB prefix the reader decompresses.
    @Test func readsTheHeaderOfACompressedFileWithALargeVocabulary() throws {
        let tokens = (0..<60_000).map { MetadataValue.string("tok_\($0)") }
        let metadata = Metadata([("general.architecture", .string("llama")),
                                 ("tokenizer.ggml.tokens", .array(elementType: 8, tokens)),
                                 ("tokenizer.ggml.scores", .array(elementType: 6, (0..<60_000).map { .float32(Float($0)) }))])
        let tensors = [computed("a", .plain(.f32), [4]), computed("b", .block(.q8_0), [2, 32])]
        let out = temporaryPath("vocab.gguf.zst")
        defer { unlink(out) }
        try GGUFWriter.write(tensors, metadata: metadata, to: out, zstdLevel: 1)
        let header = try CheckpointReader.open(out, headerOnly: true)
        #expect(header.compressed && header.format == .gguf)
        #expect(header.metadata == metadata)
        #expect(header.tensors.map(\.name) == ["a", "b"])
        #expect(header.tensors.map(\.byteCount) == [16, 68])
        #expect(throws: ScalpelError.self) { _ = try header.view("a") }
    }

    @Test func writesAlignmentOnlyWhenNot32() throws {
        let tensors = [computed("a", .plain(.f32), [3]), computed("b", .plain(.f32), [1])]
        let meta = Metadata([("general.architecture", .string("x"))])
        let out = temporaryPath("align.gguf")
        defer { unlink(out) }

        try GGUFWriter.write(tensors, metadata: meta, to: out)
        #expect(try CheckpointReader.open(out).metadata == meta)

        try GGUFWriter.write(tensors, metadata: meta, alignment: 256, to: out)
        let wide = try CheckpointReader.open(out)
        #expect(wide.metadata == meta.merging([("general.alignment", .uint32(256))]))
        #expect(wide.alignment == 256)
        #expect(wide.tensors.map(\.offset) == [0, 256])

        // Kept in place when metadata already holds it.
        let held = Metadata([("general.alignment", .uint32(64)), ("general.architecture", .string("x"))])
        try GGUFWriter.write(tensors, metadata: held, alignment: 64, to: out)
        #expect(try CheckpointReader.open(out).metadata == held)
    }

    @Test func rejectsWhatGGUFCannotHold() throws {
        let out = temporaryPath("bad.gguf")
        func expectInvalid(tensor: String?, _ reason: String, _ tensors: [OutputTensor], metadata: Metadata = Metadata(),
                           alignment: Int = 32, sourceLocation: SourceLocation = #_sourceLocation) {
            do {
                try GGUFWriter.write(tensors, metadata: metadata, alignment: alignment, to: out)
                Issue.record("wrote", sourceLocation: sourceLocation)
            } catch let ScalpelError.invalid(file, t, r) {
                #expect(file == out && t == tensor, sourceLocation: sourceLocation)
                #expect(r.contains(reason), "\(r)", sourceLocation: sourceLocation)
            } catch {
                Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
            }
            #expect(!FileManager.default.fileExists(atPath: out), sourceLocation: sourceLocation)
        }
        expectInvalid(tensor: "mask", "type U8 cannot be stored in GGUF", [computed("mask", .plain(.u8), [4])])
        expectInvalid(tensor: "f8", "type F8_E4M3 cannot be stored in GGUF", [computed("f8", .plain(.f8e4m3), [4])])
        let long = String(repeating: "x", count: 64)
        expectInvalid(tensor: long, "name is 64 bytes", [computed(long, .plain(.f32), [1])])
        expectInvalid(tensor: "w", "has 5 dimensions", [computed("w", .plain(.f32), [1, 1, 1, 1, 1])])
        expectInvalid(tensor: "q", "innermost dimension 16 is not a multiple of the Q8_0 block size 32",
                      [computed("q", .block(.q8_0), [4, 16])])
        expectInvalid(tensor: "q", "does not fit type Q4_0", [computed("q", .block(.q4_0), [])])
        expectInvalid(tensor: "w", "duplicate tensor name", [computed("w", .plain(.f32), [1]), computed("w", .plain(.f32), [2])])
        expectInvalid(tensor: nil, "metadata \"k\" element 1 is INT32 in an array of UINT32", [],
                      metadata: Metadata([("k", .array(elementType: 4, [.uint32(1), .int32(2)]))]))
        expectInvalid(tensor: nil, "metadata \"k\" has array element type 9", [],
                      metadata: Metadata([("k", .array(elementType: 9, []))]))
        expectInvalid(tensor: nil, "GGUF alignment 48 is not a power of two", [], alignment: 48)
        expectInvalid(tensor: nil, "metadata general.alignment = 64 (UINT32) disagrees with the alignment 32", [],
                      metadata: Metadata([("general.alignment", .uint32(64))]))
        expectInvalid(tensor: nil, "metadata general.alignment = 32 (UINT64) disagrees", [],
                      metadata: Metadata([("general.alignment", .uint64(32))]))
    }
}

private extension Metadata {
    /// This metadata with `more` appended.
    func merging(_ more: [(String, MetadataValue)]) -> Metadata {
        var m = self
        for (k, v) in more { m[k] = v }
        return m
    }
}

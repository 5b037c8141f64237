import Foundation
import Testing
@testable import ScalpelKit

@Suite struct SafetensorsTests {
    @Test func writesWhatItReads() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.file("a.safetensors")
        let a: [Float] = [1, -2, 3.5, 0, .infinity, -0.0]
        try SafetensorsWriter.write([f32Tensor("b", [2, 3], a), f32Tensor("a", [], [7])],
                                    metadata: Metadata([("format", .string("pt"))]), to: path)
        let c = try CheckpointReader.open(path)
        #expect(c.format == .safetensors)
        #expect(c.tensors.map(\.name) == ["a", "b"])  // reference order: same dtype, by name
        #expect(c.info(named: "b")?.shape == [2, 3])
        #expect(c.info(named: "a")?.shape == [])
        #expect(try FloatConversion.floats(try c.view("b")).map(\.bitPattern) == a.map(\.bitPattern))
        #expect(try FloatConversion.floats(try c.view("a")) == [7])
        #expect(c.metadata["format"] == .string("pt"))
        // Data starts 8-byte aligned.
        let n = Int(c.files[0].bytes.loadUnaligned(as: UInt64.self))
        #expect((8 + n) % 8 == 0)
        #expect(dir.entries() == ["a.safetensors"])
    }

    @Test func headerMatchesReferenceLayout() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.file("x.safetensors")
        let f16 = OutputTensor(name: "c", type: .plain(.f16), shape: [2], content: .filling { $0.copyBytes(from: [0, 60, 0, 188] as [UInt8]) })
        try SafetensorsWriter.write([f32Tensor("b", [1], [1]), f16], metadata: Metadata(), to: path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        #expect(header == #"{"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"c":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}}"# + "     ")
    }

    /// Each malformed header gives a malformed error whose reason contains the expected words.
    @Test(arguments: [
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, 4, "needs 8"),
        (#"{"a":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}}"#, 4, "unknown dtype"),
        (#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, 4, "non-negative"),
        (#"{"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,4]}}"#, 4, "overflows"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, 4, "before begin"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#, 6, "overlaps"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, 12, "hole"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, 8, "file has"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8, "duplicate key"),
        (#"{"__metadata__":{"x":1}}"#, 0, "not a string"),
        (#"[1,2]"#, 0, "not a JSON object"),
        (#"{"a":"#, 0, "not valid JSON"),
        (#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#, 2, "whole number of bytes"),
    ])
    func rejectsMalformedHeaders(header: String, dataBytes: Int, expected: String) throws {
        let bytes = safetensorsBytes(header: header, data: [UInt8](repeating: 0, count: dataBytes))
        let result = bytes.withUnsafeBytes { b in Result { try SafetensorsHeader.parse(b, fileLength: b.count, file: "f") } }
        guard case .failure(let e) = result else { Issue.record("accepted: \(header)"); return }
        #expect(e is ScalpelError)
        #expect("\(e)".contains(expected), "\(e)")
    }

    @Test func rejectsHostileLengths() throws {
        for (bytes, expected) in [
            (safetensorsBytes(header: "{}", declaredLength: 200_000_000), "exceeds"),
            (safetensorsBytes(header: "{}", declaredLength: 1000), "past the end"),
            ([1, 2, 3] as [UInt8], "shorter than"),
        ] {
            let r = bytes.withUnsafeBytes { b in Result { try SafetensorsHeader.parse(b, fileLength: b.count, file: "f") } }
            guard case .failure(let e) = r else { Issue.record("accepted \(expected)"); continue }
            #expect("\(e)".contains(expected), "\(e)")
        }
    }

    @Test func acceptsLeadingWhitespaceAndEmptyTensors() throws {
        let bytes = safetensorsBytes(header: #"  {"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}}"#)
        let h = try bytes.withUnsafeBytes { try SafetensorsHeader.parse($0, fileLength: $0.count, file: "f") }
        #expect(h.tensors.first?.shape == [0, 3])
        #expect(h.tensors.first?.byteCount == 0)
    }

    @Test func shardsAndReadsBackAsOneModel() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let tensors = (0..<5).map { i in f32Tensor("layers.\(i).weight", [4, 4], (0..<16).map { Float($0 + 100 * i) }) }
        try ShardedSafetensors.write(tensors, metadata: Metadata([("format", .string("pt"))]), to: dir.file("out"), shardBytes: 150)
        #expect(dir.entries() == ["out"])
        let files = (try FileManager.default.contentsOfDirectory(atPath: dir.file("out"))).sorted()
        #expect(files == ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                          "model-00003-of-00003.safetensors", "model.safetensors.index.json"])
        let c = try CheckpointReader.open(dir.file("out"))
        #expect(c.format == .shardedSafetensors)
        #expect(c.tensors.count == 5)
        #expect(try FloatConversion.floats(try c.view("layers.3.weight"))[1] == 301)
        let index = try JSONParser.parse(try readSmallFile(dir.file("out/model.safetensors.index.json")))
        #expect(index["metadata"]?["total_size"]?.intValue == 5 * 64)
        #expect(index["weight_map"]?["layers.4.weight"]?.stringValue == "model-00003-of-00003.safetensors")
    }

    @Test func zstdRoundTripAndHeaderOnlyOpen() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let values = (0..<100_000).map { Float($0 % 7) }
        try SafetensorsWriter.write([f32Tensor("w", [100_000], values)], metadata: Metadata(), to: dir.file("a.safetensors.zst"), zstdLevel: 3)
        let header = try CheckpointReader.open(dir.file("a.safetensors.zst"), headerOnly: true)
        #expect(header.compressed && header.tensors.first?.shape == [100_000])
        #expect(header.fileBytes < 400_000 / 10)
        #expect(throws: ScalpelError.self) { _ = try header.view(at: 0) }
        let full = try CheckpointReader.open(dir.file("a.safetensors.zst"))
        #expect(try FloatConversion.floats(try full.view("w")) == values)
    }

    @Test func failedWriteLeavesNoFile() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let bad = OutputTensor(name: "x", type: .plain(.f32), shape: [2], content: .filling { _ in
            throw ScalpelError.invalid(file: nil, tensor: "x", reason: "boom")
        })
        #expect(throws: ScalpelError.self) {
            try SafetensorsWriter.write([bad], metadata: Metadata(), to: dir.file("o.safetensors"))
        }
        #expect(dir.entries().isEmpty)
    }
}

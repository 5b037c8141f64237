import Foundation
import Testing
@testable import ScalpelKit

/// Paths and decoders for the fixtures in `fixtures/gguf/` (made by `make_gguf_fixtures.py` with gguf-py).
enum GGUFFixtures {
    static let directory = repositoryPath("fixtures/gguf")

    static func path(_ name: String) -> String { directory + "/" + name }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(name))))
    }

    static func json(_ name: String) throws -> JSONValue {
        try JSONParser.parse(String(decoding: try bytes(name), as: UTF8.self))
    }

    /// Bytes from a hex string.
    static func hex(_ s: String) -> [UInt8] {
        let digits = Array(s.utf8).map { $0 <= 0x39 ? $0 - 0x30 : ($0 | 0x20) - 0x61 + 10 }
        return stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
    }

    /// Little-endian float32 values from a hex string.
    static func floats(_ s: String) -> [Float] {
        let b = hex(s)
        return stride(from: 0, to: b.count, by: 4).map {
            Float(bitPattern: UInt32(b[$0]) | UInt32(b[$0 + 1]) << 8 | UInt32(b[$0 + 2]) << 16 | UInt32(b[$0 + 3]) << 24)
        }
    }

    static func hexString(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}

/// Builds raw GGUF bytes by hand, independently of `GGUFWriter`, to craft valid and malformed headers.
struct RawGGUF {
    var bytes: [UInt8] = []

    init(magic: [UInt8] = Array("GGUF".utf8), version: UInt32 = 3, tensors: UInt64, keyValues: UInt64) {
        bytes = magic
        u32(version)
        u64(tensors)
        u64(keyValues)
    }

    mutating func int<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { int(v) }
    mutating func u64(_ v: UInt64) { int(v) }
    mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); bytes.append(contentsOf: s.utf8) }
    mutating func kvU32(_ key: String, _ v: UInt32) { string(key); u32(4); u32(v) }
    mutating func kvString(_ key: String, _ v: String) { string(key); u32(8); string(v) }

    /// A tensor info; `ne` in ggml order.
    mutating func tensor(_ name: String, ne: [UInt64], type: UInt32 = 0, offset: UInt64) {
        string(name)
        u32(UInt32(ne.count))
        for d in ne { u64(d) }
        u32(type)
        u64(offset)
    }

    /// Zero padding to `alignment`, then `dataBytes` zero bytes of tensor data.
    mutating func data(_ dataBytes: Int, alignment: Int = 32) {
        while bytes.count % alignment != 0 { bytes.append(0) }
        bytes.append(contentsOf: repeatElement(0, count: dataBytes))
    }

    /// Parses the bytes as a whole file, or as a prefix of an unknown file (`prefix`).
    func parse(prefix: Bool = false) throws -> (tensors: [TensorInfo], metadata: Metadata, alignment: Int, dataStart: Int) {
        try bytes.withUnsafeBytes { try GGUFReader.parse($0, fileLength: prefix ? nil : $0.count, file: "t.gguf") }
    }
}

/// Expects `body` to throw `ScalpelError.malformed` for tensor `tensor` with a reason containing `reason`.
func expectGGUFMalformed(tensor: String? = nil, _ reason: String, sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected a malformed error containing \"\(reason)\"", sourceLocation: sourceLocation)
    } catch let ScalpelError.malformed(file, t, r) {
        #expect(file == "t.gguf" || file.hasSuffix(".gguf"), sourceLocation: sourceLocation)
        #expect(t == tensor, "tensor", sourceLocation: sourceLocation)
        #expect(r.contains(reason), "\(r)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct GGUFReaderTests {
    static let expectedMetadata = Metadata([
        ("general.architecture", .string("llama")),
        ("t.u8", .uint8(200)),
        ("t.i8", .int8(-100)),
        ("t.u16", .uint16(60000)),
        ("t.i16", .int16(-30000)),
        ("t.u32", .uint32(4_000_000_000)),
        ("t.i32", .int32(-2_000_000_000)),
        ("t.f32", .float32(0.1)),
        ("t.bool_true", .bool(true)),
        ("t.bool_false", .bool(false)),
        ("t.string", .string("héllo, wörld ✓")),
        ("t.u64", .uint64(18_000_000_000_000_000_000)),
        ("t.i64", .int64(-9_000_000_000_000_000_000)),
        ("t.f64", .float64(-2.5e-300)),
        ("t.arr_u8", .array(elementType: 0, [.uint8(0), .uint8(1), .uint8(255)])),
        ("t.arr_i8", .array(elementType: 1, [.int8(-128), .int8(0), .int8(127)])),
        ("t.arr_u16", .array(elementType: 2, [.uint16(0), .uint16(65535)])),
        ("t.arr_i16", .array(elementType: 3, [.int16(-32768), .int16(32767)])),
        ("t.arr_u32", .array(elementType: 4, [.uint32(1), .uint32(4_294_967_295)])),
        ("t.arr_i32", .array(elementType: 5, [.int32(-1), .int32(2), .int32(-3)])),
        ("t.arr_f32", .array(elementType: 6, [.float32(1.5), .float32(-0.25), .float32(3.0e38)])),
        ("t.arr_bool", .array(elementType: 7, [.bool(true), .bool(false), .bool(true)])),
        ("t.arr_str", .array(elementType: 8, [.string("a"), .string(""), .string("ünï")])),
        ("t.arr_u64", .array(elementType: 10, [.uint64(0), .uint64(UInt64.max)])),
        ("t.arr_i64", .array(elementType: 11, [.int64(Int64.min), .int64(Int64.max)])),
        ("t.arr_f64", .array(elementType: 12, [.float64(0.5), .float64(-1e300)])),
        ("general.quantization_version", .uint32(2)),
    ])

    @Test func readsEveryMetadataTypeWrittenByGGUFPy() throws {
        let ckpt = try CheckpointReader.open(GGUFFixtures.path("all_types.gguf"))
        #expect(ckpt.format == .gguf)
        #expect(ckpt.metadata == Self.expectedMetadata)
        #expect(ckpt.metadata.keys == Self.expectedMetadata.keys)
    }

    @Test(arguments: [0, 1]) func tensorsMatchGGUFPy(fileIndex: Int) throws {
        let expected = try GGUFFixtures.json("all_types.json").arrayValue![fileIndex]
        let name = expected["file"]!.stringValue!
        let ckpt = try CheckpointReader.open(GGUFFixtures.path(name))
        #expect(ckpt.alignment == expected["alignment"]!.intValue)
        let parsed = try GGUFFixtures.bytes(name).withUnsafeBytes {
            try GGUFReader.parse($0, fileLength: $0.count, file: name)
        }
        #expect(parsed.dataStart == expected["data_start"]!.intValue)
        #expect(ckpt.metadata.keys == expected["keys"]!.arrayValue!.map { $0.stringValue! })
        let tensors = expected["tensors"]!.arrayValue!
        #expect(ckpt.tensors.map(\.name) == tensors.map { $0["name"]!.stringValue! })
        for (info, e) in zip(ckpt.tensors, tensors) {
            #expect(info.type.description == e["type"]!.stringValue!, "\(info.name)")
            #expect(info.shape == e["shape"]!.arrayValue!.map { $0.intValue! }, "\(info.name)")
            #expect(info.offset == e["offset"]!.intValue!, "\(info.name)")
            #expect(info.byteCount == e["nbytes"]!.intValue!, "\(info.name)")
            #expect(GGUFFixtures.hexString(try ckpt.view(info.name).bytes) == e["data"]!.stringValue!, "\(info.name)")
        }
    }

    @Test func mapsPlainAndBlockTypes() throws {
        let ckpt = try CheckpointReader.open(GGUFFixtures.path("all_types.gguf"))
        let types = Dictionary(uniqueKeysWithValues: ckpt.tensors.map { ($0.name, $0.type) })
        #expect(types["f32"] == .plain(.f32))
        #expect(types["f16"] == .plain(.f16))
        #expect(types["bf16"] == .plain(.bf16))
        #expect(types["f64"] == .plain(.f64))
        #expect(types["i8"] == .plain(.i8))
        #expect(types["i16"] == .plain(.i16))
        #expect(types["i32"] == .plain(.i32))
        #expect(types["i64"] == .plain(.i64))
        #expect(types["q8_0"] == .block(.q8_0))
        #expect(types["q4_0"] == .block(.q4_0))
        #expect(types["q4_1"] == .block(.q4_1))
        #expect(types["q5_0"] == .block(.q5_0))
        #expect(types["q5_1"] == .block(.q5_1))
        let f32 = try ckpt.view("f32").bytes
        #expect(Array(f32.bindMemory(to: Float.self)) == [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    }

    /// Every cut inside the header: a complete file of that length is malformed, a prefix asks for more.
    @Test func everyTruncationOfTheHeaderIsReported() throws {
        let file = try GGUFFixtures.bytes("all_types.gguf")
        let full = try file.withUnsafeBytes { try GGUFReader.parse($0, fileLength: $0.count, file: "t.gguf") }
        let headerEnd = 1456  // end of the last tensor info (data_start 1472 is after padding)
        for cut in 0..<headerEnd {
            file.withUnsafeBytes { all in
                let prefix = UnsafeRawBufferPointer(rebasing: all[0..<cut])
                do {
                    _ = try GGUFReader.parse(prefix, fileLength: cut, file: "t.gguf")
                    Issue.record("cut \(cut) parsed")
                } catch ScalpelError.malformed {
                } catch {
                    Issue.record("cut \(cut): \(error)")
                }
                do {
                    _ = try GGUFReader.parse(prefix, fileLength: nil, file: "t.gguf")
                    Issue.record("prefix \(cut) parsed")
                } catch let more as NeedMoreBytes {
                    #expect(more.atLeast > cut)
                    #expect(more.atLeast <= headerEnd)
                } catch {
                    Issue.record("prefix \(cut): \(error)")
                }
            }
        }
        // A prefix that holds the whole header parses as the whole file does.
        let prefix = try file.withUnsafeBytes { try GGUFReader.parse(UnsafeRawBufferPointer(rebasing: $0[0..<headerEnd]), fileLength: nil, file: "t.gguf") }
        #expect(prefix.tensors == full.tensors)
        #expect(prefix.metadata == full.metadata)
        #expect(prefix.dataStart == full.dataStart)
    }

    @Test func tensorDataMustLieWithinTheFile() throws {
        let file = try GGUFFixtures.bytes("all_types.gguf")
        // The last tensor (q5_1, 48 bytes at data offset 576) ends at 1472 + 624 = 2096; its padding to 2112
        // may be missing, as llama.cpp allows.
        let unpadded = try file.withUnsafeBytes { try GGUFReader.parse(UnsafeRawBufferPointer(rebasing: $0[0..<2096]), fileLength: 2096, file: "t.gguf") }
        #expect(unpadded.tensors.count == 13)
        expectGGUFMalformed(tensor: "q5_1", "data runs past the end of the file (ends at byte 2096, file has 2095 bytes)") {
            _ = try file.withUnsafeBytes { try GGUFReader.parse(UnsafeRawBufferPointer(rebasing: $0[0..<2095]), fileLength: 2095, file: "t.gguf") }
        }
    }

    @Test func rejectsBadMagicAndVersions() {
        expectGGUFMalformed("not a GGUF file") { _ = try RawGGUF(magic: Array("GGUG".utf8), tensors: 0, keyValues: 0).parse() }
        expectGGUFMalformed("GGUF version 1 is no longer supported") { _ = try RawGGUF(version: 1, tensors: 0, keyValues: 0).parse() }
        expectGGUFMalformed("unsupported GGUF version 4") { _ = try RawGGUF(version: 4, tensors: 0, keyValues: 0).parse() }
        expectGGUFMalformed("unsupported GGUF version 0") { _ = try RawGGUF(version: 0, tensors: 0, keyValues: 0).parse() }
        expectGGUFMalformed("big-endian") { _ = try RawGGUF(version: 3 << 24, tensors: 0, keyValues: 0).parse() }
    }

    @Test func readsVersion2AndAnEmptyFile() throws {
        var g = RawGGUF(version: 2, tensors: 1, keyValues: 1)
        g.kvString("general.architecture", "x")
        g.tensor("w", ne: [3, 2], type: 1, offset: 0)
        g.data(12)
        let h = try g.parse()
        #expect(h.metadata == Metadata([("general.architecture", .string("x"))]))
        #expect(h.tensors == [TensorInfo(name: "w", type: .plain(.f16), shape: [2, 3], offset: 0, byteCount: 12)])
        #expect(h.dataStart == 128)
        let empty = try RawGGUF(tensors: 0, keyValues: 0).parse()
        #expect(empty.tensors.isEmpty && empty.metadata.isEmpty && empty.alignment == 32)
    }

    @Test func rejectsDuplicates() {
        var keys = RawGGUF(tensors: 0, keyValues: 2)
        keys.kvU32("a.b", 1)
        keys.kvString("a.b", "again")
        expectGGUFMalformed("duplicate metadata key \"a.b\"") { _ = try keys.parse() }

        var names = RawGGUF(tensors: 2, keyValues: 0)
        names.tensor("w", ne: [8], offset: 0)
        names.tensor("w", ne: [8], offset: 32)
        names.data(64)
        expectGGUFMalformed(tensor: "w", "duplicate tensor name") { _ = try names.parse() }
    }

    @Test func tensorNamesMustBeShorterThan64Bytes() throws {
        for (length, ok) in [(63, true), (64, false)] {
            let name = String(repeating: "n", count: length)
            var g = RawGGUF(tensors: 1, keyValues: 0)
            g.tensor(name, ne: [1], offset: 0)
            g.data(4)
            if ok {
                #expect(try g.parse().tensors.map(\.name) == [name])
            } else {
                expectGGUFMalformed(tensor: name, "name is 64 bytes; ggml allows at most 63") { _ = try g.parse() }
            }
        }
    }

    @Test func alignmentMustBeAUInt32PowerOfTwo() throws {
        for bad: UInt32 in [0, 48, 3] {
            var g = RawGGUF(tensors: 0, keyValues: 1)
            g.kvU32("general.alignment", bad)
            expectGGUFMalformed("general.alignment \(bad) is not a power of two") { _ = try g.parse() }
        }
        var wrongType = RawGGUF(tensors: 0, keyValues: 1)
        wrongType.string("general.alignment"); wrongType.u32(10); wrongType.u64(64)
        expectGGUFMalformed("general.alignment must be UINT32, found UINT64") { _ = try wrongType.parse() }

        var g = RawGGUF(tensors: 2, keyValues: 1)
        g.kvU32("general.alignment", 128)
        g.tensor("a", ne: [1], offset: 0)
        g.tensor("b", ne: [1], offset: 128)
        g.data(132, alignment: 128)
        let h = try g.parse()
        #expect(h.alignment == 128 && h.dataStart == 128)
        #expect(h.tensors.map(\.offset) == [0, 128])
    }

    @Test func offsetsMustBeTheRunningSumOfPaddedSizes() {
        var gap = RawGGUF(tensors: 2, keyValues: 0)
        gap.tensor("a", ne: [3], offset: 0)
        gap.tensor("b", ne: [3], offset: 12)  // must be 32: "a" is padded to the alignment
        gap.data(64)
        expectGGUFMalformed(tensor: "b", "data offset 12, expected 32") { _ = try gap.parse() }

        var first = RawGGUF(tensors: 1, keyValues: 0)
        first.tensor("a", ne: [3], offset: 32)
        first.data(64)
        expectGGUFMalformed(tensor: "a", "data offset 32, expected 0") { _ = try first.parse() }
    }

    @Test func rejectsHugeCountsWithoutAllocating() {
        var array = RawGGUF(tensors: 0, keyValues: 1)
        array.string("k"); array.u32(9); array.u32(0); array.u64(1 << 60)
        expectGGUFMalformed("metadata \"k\" array element count 1152921504606846976 needs at least 1152921504606846976 bytes at offset 49") { _ = try array.parse() }
        // A prefix cannot tell: it asks for at least that many bytes (and fails once the file is complete).
        #expect { _ = try array.parse(prefix: true) } throws: { ($0 as? NeedMoreBytes)?.atLeast ?? 0 > 1 << 60 }

        var overflow = RawGGUF(tensors: 0, keyValues: 1)
        overflow.string("k"); overflow.u32(9); overflow.u32(10); overflow.u64(UInt64.max / 4)
        expectGGUFMalformed("impossibly large") { _ = try overflow.parse(prefix: true) }

        var string = RawGGUF(tensors: 0, keyValues: 1)
        string.string("k"); string.u32(8); string.u64(1 << 40); string.bytes += Array("abc".utf8)
        expectGGUFMalformed("metadata \"k\" byte count 1099511627776 needs at least 1099511627776 bytes at offset 45, past the end of the file (48 bytes)") { _ = try string.parse() }

        var key = RawGGUF(tensors: 0, keyValues: 1)
        key.u64(UInt64.max)
        key.bytes += [UInt8](repeating: 0, count: 16)
        expectGGUFMalformed("metadata key #0 byte count 18446744073709551615 is impossibly large") { _ = try key.parse() }

        expectGGUFMalformed("tensor info count 1099511627776 needs at least 26388279066624 bytes at offset 24") { _ = try RawGGUF(tensors: 1 << 40, keyValues: 0).parse() }
        expectGGUFMalformed("metadata key/value count 4294967296 needs at least") { _ = try RawGGUF(tensors: 0, keyValues: 1 << 32).parse() }
    }

    @Test func rejectsBadValues() {
        var nested = RawGGUF(tensors: 0, keyValues: 1)
        nested.string("k"); nested.u32(9); nested.u32(9); nested.u64(1)
        expectGGUFMalformed("metadata \"k\" is an array of arrays") { _ = try nested.parse() }

        var unknown = RawGGUF(tensors: 0, keyValues: 1)
        unknown.string("k"); unknown.u32(13); unknown.u8(0)
        expectGGUFMalformed("metadata \"k\" has unknown value type 13") { _ = try unknown.parse() }

        var unknownElement = RawGGUF(tensors: 0, keyValues: 1)
        unknownElement.string("k"); unknownElement.u32(9); unknownElement.u32(99); unknownElement.u64(0)
        expectGGUFMalformed("metadata \"k\" is an array of unknown value type 99") { _ = try unknownElement.parse() }

        var bool = RawGGUF(tensors: 0, keyValues: 1)
        bool.string("k"); bool.u32(7); bool.u8(2)
        expectGGUFMalformed("metadata \"k\" is a BOOL with byte value 2") { _ = try bool.parse() }

        var utf8 = RawGGUF(tensors: 0, keyValues: 1)
        utf8.u64(2); utf8.bytes += [0xC3, 0x28]; utf8.u32(0); utf8.u8(0)
        expectGGUFMalformed("metadata key #0 at offset 32 is not valid UTF-8") { _ = try utf8.parse() }

        var emptyArray = RawGGUF(tensors: 0, keyValues: 1)
        emptyArray.string("k"); emptyArray.u32(9); emptyArray.u32(8); emptyArray.u64(0)
        #expect((try? emptyArray.parse().metadata) == Metadata([("k", .array(elementType: 8, []))]))
    }

    @Test func rejectsBadTensorInfos() {
        var type = RawGGUF(tensors: 1, keyValues: 0)
        type.tensor("w", ne: [32], type: 4, offset: 0)  // Q4_2, retired
        type.data(64)
        expectGGUFMalformed(tensor: "w", "unknown ggml type id 4") { _ = try type.parse() }

        var dims = RawGGUF(tensors: 1, keyValues: 0)
        dims.tensor("w", ne: [1, 1, 1, 1, 1], offset: 0)
        dims.data(4)
        expectGGUFMalformed(tensor: "w", "has 5 dimensions; ggml allows at most 4") { _ = try dims.parse() }

        var block = RawGGUF(tensors: 1, keyValues: 0)
        block.tensor("w", ne: [16, 2], type: 8, offset: 0)  // Q8_0 needs ne[0] % 32 == 0
        block.data(64)
        expectGGUFMalformed(tensor: "w", "innermost dimension 16 is not a multiple of the Q8_0 block size 32") { _ = try block.parse() }

        var negative = RawGGUF(tensors: 1, keyValues: 0)
        negative.tensor("w", ne: [UInt64.max], offset: 0)
        expectGGUFMalformed(tensor: "w", "dimension 0 is 18446744073709551615, out of range") { _ = try negative.parse() }

        var overflow = RawGGUF(tensors: 1, keyValues: 0)
        overflow.tensor("w", ne: [1 << 40, 1 << 40], offset: 0)
        expectGGUFMalformed(tensor: "w", "overflows") { _ = try overflow.parse() }
    }

    @Test func readsScalarsAndBlockShapesInRowMajorOrder() throws {
        var g = RawGGUF(tensors: 2, keyValues: 0)
        g.tensor("scalar", ne: [], type: 0, offset: 0)
        g.tensor("q", ne: [64, 3, 2], type: 2, offset: 32)  // Q4_0: 2*3*2 blocks of 18 bytes
        g.data(32 + 216)
        let h = try g.parse()
        #expect(h.tensors == [
            TensorInfo(name: "scalar", type: .plain(.f32), shape: [], offset: 0, byteCount: 4),
            TensorInfo(name: "q", type: .block(.q4_0), shape: [2, 3, 64], offset: 32, byteCount: 216),
        ])
    }
}

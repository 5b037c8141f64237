import Foundation
import Testing
@testable import ScalpelKit

/// The PyTorch reader against `fixtures/torch` (made by `make_torch_fixtures.py` with torch.save; what
/// torch.load read is in expected.json), the restricted unpickler on hand-made streams, and typed
/// safetensors metadata.
struct TorchCheckpointTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/torch").path

    func expected() throws -> JSONValue {
        try JSONParser.parse(try readSmallFile(Self.fixtures + "/expected.json"))
    }

    func check(_ path: String, _ key: String) throws {
        let ckpt = try CheckpointReader.open(path)
        #expect(ckpt.format == .pytorch)
        let want = try #require(try expected()[key]?.objectValue)
        #expect(Set(ckpt.tensors.map(\.name)) == Set(want.map(\.0)))
        for (name, e) in want {
            let v = try ckpt.view(name)
            #expect(v.info.type.description == e["dtype"]?.stringValue, "\(name)")
            #expect(v.info.shape == e["shape"]?.arrayValue?.compactMap(\.intValue), "\(name)")
            #expect(v.bytes.map { String(format: "%02x", $0) }.joined() == e["hex"]?.stringValue, "\(name)")
        }
    }

    @Test func everyDtype() throws { try check(Self.fixtures + "/all_dtypes.pt", "all_dtypes.pt") }
    @Test func sharedStoragesOffsetsAndStrides() throws { try check(Self.fixtures + "/views.pt", "views.pt") }
    @Test func nestedDicts() throws { try check(Self.fixtures + "/nested.pt", "nested.pt") }
    @Test func shardedFolder() throws { try check(Self.fixtures + "/sharded", "sharded") }

    @Test func contiguousViewIsZeroCopy() throws {
        let ckpt = try CheckpointReader.open(Self.fixtures + "/views.pt")
        let base = try ckpt.view("base"), slice = try ckpt.view("offset_slice")
        #expect(slice.bytes.baseAddress == base.bytes.baseAddress! + 10 * 4)
    }

    func unpickle(_ bytes: [UInt8]) throws -> PickleValue {
        try bytes.withUnsafeBytes { b in
            var u = RestrictedUnpickler(b, file: "t.pkl")
            return try u.load()
        }
    }

    @Test func refusesOtherGlobalsWithoutRunningThem() {
        let stream: [UInt8] = [0x80, 0x02] + Array("cposix\nsystem\n".utf8) + [0x58, 4, 0, 0, 0] + Array("true".utf8) + [0x85, 0x52, 0x2E]
        do {
            _ = try unpickle(stream)
            Issue.record("accepted posix.system")
        } catch {
            #expect("\(error)".contains("refused global posix.system"))
        }
    }

    @Test func plainContainers() throws {
        // {"a": [1, -2, 3.5, True, None], "b": (b"xy",)} in protocol 4.
        let stream: [UInt8] = [0x80, 0x04, 0x7D, 0x28, 0x8C, 1, 0x61, 0x5D, 0x28, 0x4B, 1, 0x4A] + [0xFE, 0xFF, 0xFF, 0xFF]
            + [0x47, 0x40, 0x0C, 0, 0, 0, 0, 0, 0, 0x88, 0x4E, 0x65, 0x8C, 1, 0x62, 0x43, 2, 0x78, 0x79, 0x85, 0x75, 0x2E]
        guard case .dict(let d) = try unpickle(stream) else { Issue.record("not a dict"); return }
        #expect(d.entries.count == 2)
        guard case .list(let l) = d.entries[0].value else { Issue.record("not a list"); return }
        #expect(l.items.count == 5)
        #expect(l.items[1].intValue == -2)
        if case .float(let f) = l.items[2] { #expect(f == 3.5) } else { Issue.record("not a float") }
    }

    @Test func typedMetadataRoundTrip() throws {
        let m = Metadata([("a", .uint32(7)), ("s", .string("42")), ("f", .float32(1e-5)),
                          ("arr", .array(elementType: 8, [.string("x\"y"), .string("é")])),
                          ("u", .array(elementType: 10, [.uint64(UInt64.max), .uint64(3)]))])
        let encoded = Metadata(SafetensorsTypedMetadata.encode(m).map { ($0.0, MetadataValue.string($0.1)) })
        #expect(encoded["a"] == .string("7"))
        #expect(try SafetensorsTypedMetadata.decode(encoded, file: "f") == m)
    }
}

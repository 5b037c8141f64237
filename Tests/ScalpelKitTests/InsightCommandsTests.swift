import Foundation
import Testing
@testable import ScalpelKit

/// The library parts of `diff`, `meta` and `rename`.
@Suite struct InsightCommandsTests {
    // MARK: meta

    @Test func metadataTypesParseAndInfer() throws {
        #expect(MetadataType("array[u16]") == .array(.u16))
        #expect(MetadataType("array[array[u8]]") == nil)
        #expect(MetadataType("uint32")?.description == "u32")
        #expect(try MetadataType.u8.parse("255", key: "k", file: nil) == .uint8(255))
        #expect(throws: ScalpelError.self) { try MetadataType.u8.parse("256", key: "k", file: nil) }
        #expect(try MetadataType.array(.string).parse(#"["a", "b"]"#, key: "k", file: nil)
                == .array(elementType: 8, [.string("a"), .string("b")]))
        #expect(throws: ScalpelError.self) { try MetadataType.array(.i32).parse(#"[1, "x"]"#, key: "k", file: nil) }
        #expect(MetadataType.infer("12") == .i32)
        #expect(MetadataType.infer("5000000000") == .i64)
        #expect(MetadataType.infer("0.25") == .f32)
        #expect(MetadataType.infer("true") == .bool)
        #expect(MetadataType.infer("[1, 2]") == .array(.i32))
        #expect(MetadataType.infer("[1.5, 2]") == .array(.f32))
        #expect(MetadataType.infer("nan") == .string)
        #expect(MetadataType.infer("hello") == .string)
    }

    @Test func editKeepsTypesAndOrder() throws {
        let m = Metadata([("a", .uint32(1)), ("b", .string("x")), ("c", .float32(1))])
        var e = MetadataEdit()
        e.sets = [(key: "a", value: "7"), (key: "d", value: "[1, 2]")]
        e.types = [(key: "d", type: .array(.u8))]
        e.deletes = ["b"]
        let out = try e.apply(to: m, format: .gguf, file: "f.gguf")
        #expect(out == Metadata([("a", .uint32(7)), ("c", .float32(1)), ("d", .array(elementType: 0, [.uint8(1), .uint8(2)]))]))
        var twice = MetadataEdit()
        twice.sets = [(key: "a", value: "1")]
        twice.deletes = ["a"]
        #expect(throws: ScalpelError.self) { try twice.apply(to: m, format: .gguf, file: "f") }
        var typed = MetadataEdit()
        typed.sets = [(key: "n", value: "1")]
        typed.types = [(key: "n", type: .u32)]
        #expect(throws: ScalpelError.self) { try typed.apply(to: Metadata(), format: .safetensors, file: "f") }
    }

    @Test func inPlaceGGUFRewritesOnlyTheHeader() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let path = dir.file("m.gguf")
        try GGUFWriter.write([f32Tensor("w", [2, 32], (0..<64).map(Float.init))],
                             metadata: Metadata([("general.architecture", .string("llama")), ("x", .string("abc"))]), to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        let c = try CheckpointReader.open(path)
        var m = c.metadata
        m["x"] = .string("abd")
        try MetadataEdit.writeInPlace(c, metadata: m)
        let after = try CheckpointReader.open(path)
        #expect(after.metadata["x"] == .string("abd"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == before.count)
        #expect(Array(try after.view("w").bytes) == Array(try c.view("w").bytes))
        m["x"] = .string(String(repeating: "z", count: 100))
        #expect(throws: ScalpelError.self) { try MetadataEdit.writeInPlace(after, metadata: m) }
    }

    // MARK: rename

    @Test func renameMappingAndCollisions() throws {
        let names = ["a.q.weight", "a.k.weight", "b.q.weight"]
        #expect(try Rename.names(names, rule: .regex(pattern: #"^a\."#, template: "x."), file: "f")
                == ["x.q.weight", "x.k.weight", "b.q.weight"])
        #expect(try Rename.names(names, rule: .regex(pattern: #"^(\w)\.(\w)\."#, template: "$2.$1."), file: "f")
                == ["q.a.weight", "k.a.weight", "q.b.weight"])
        #expect(throws: ScalpelError.self) { try Rename.names(names, rule: .regex(pattern: #"^\w\."#, template: ""), file: "f") }
        #expect(throws: ScalpelError.self) { try Rename.names(names, rule: .map([("a.k.weight", "b.q.weight")]), file: "f") }
        #expect(throws: ScalpelError.self) { try Rename.names(names, rule: .map([("nope", "x")]), file: "f") }
        #expect(try Rename.names(names, rule: .map([("a.k.weight", "a.v.weight")]), file: "f")
                == ["a.q.weight", "a.v.weight", "b.q.weight"])
    }

    // MARK: diff

    @Test func rankProfileOfAnExactLowRankDifference() throws {
        var rng = TestRandom(seed: 11)
        let m = 96, n = 80, r = 6
        let u = (0..<(m * r)).map { _ in Float.random(in: -1...1, using: &rng) }
        let v = (0..<(r * n)).map { _ in Float.random(in: -1...1, using: &rng) }
        let a = (0..<(m * n)).map { _ in Float.random(in: -1...1, using: &rng) }
        var b = a
        for i in 0..<m { for j in 0..<n { for k in 0..<r { b[i * n + j] += u[i * r + k] * v[k * n + j] } } }
        var o = Diff.Options()
        o.rankProfile = true
        o.energy = 0.999999
        o.ranks = [4, 6, 8]
        let p = try a.withUnsafeBufferPointer { pa in
            try b.withUnsafeBufferPointer { pb in try RankProfile.measure(pa, pb, rows: m, cols: n, options: o) }
        }
        #expect(p.rankForEnergy == r)
        #expect(p.fraction(at: 4)! < 0.999)
        #expect(abs(p.fraction(at: 6)! - 1) < 1e-5 && abs(p.fraction(at: 8)! - 1) < 1e-5)
    }
}

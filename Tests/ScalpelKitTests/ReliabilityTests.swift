import CScalpelKernels
import Foundation
import Testing
@testable import ScalpelKit
#if canImport(Glibc)
import Glibc
#endif

/// Issue 13: hostile input, temporaries, overwrite protection.
@Suite struct ReliabilityTests {
    @Test func escapeWritesControlCharactersAsEscapes() {
        #expect(Escape.untrusted("plain name.weight") == "plain name.weight")
        #expect(Escape.untrusted("a\nb\rc\td\u{1B}[31m") == "a\\nb\\rc\\td\\e[31m")
        #expect(Escape.untrusted("\u{0}\u{7F}\u{85}") == "\\x00\\x7F\\x85")
        #expect(Escape.untrusted("x\u{2028}y\u{202E}z") == "x\\u{2028}y\\u{202E}z")
        #expect(Escape.untrusted("back\\slash ünï") == "back\\slash ünï")
        let once = Escape.untrusted("a\nb")
        #expect(Escape.untrusted(once) == once)
    }

    @Test func errorMessagesAreOneLine() {
        let e = ScalpelError.malformed(file: "f\n.safetensors", tensor: "t\u{1B}", reason: "bad\rthing")
        #expect(e.description == "f\\n.safetensors: t\\e: bad\\rthing")
        #expect(!e.description.contains("\n"))
    }

    @Test func formatStatOfNonFiniteValues() {
        #expect(Format.stat(.infinity) == "inf")
        #expect(Format.stat(-.infinity) == "-inf")
        #expect(Format.stat(.nan) == "nan")
        #expect(Format.stat(1e20) == "1.000e20")
    }

    @Test func statsOfValuesNearTheF32Limit() throws {
        let values: [Float] = (0..<4096).map { $0 % 2 == 0 ? 1e20 : -1e20 } + [3e38, -3e38]
        let bytes = values.withUnsafeBytes { Array($0) }
        let info = TensorInfo(name: "x", type: .plain(.f32), shape: [values.count], offset: 0, byteCount: bytes.count)
        let s = try bytes.withUnsafeBytes { try TensorStats.compute(TensorView(info: info, bytes: $0, owner: nil)) }
        let d = values.map(Double.init)
        let mean = d.reduce(0, +) / Double(d.count)
        let std = (d.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(d.count)).squareRoot()
        #expect(s.std.isFinite && abs(s.std - std) <= 1e-9 * std)
        #expect(s.meanAbs.isFinite && s.mean.isFinite)
    }

    @Test func zstdContentOfAMultipleOf128KiBDecompresses() throws {
        for size in [0, 1, 131_072, 262_144, 131_071, 393_216] {
            let content = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
            let z = try ZstdCompressor(level: 1, path: "x")
            var frame: [UInt8] = []
            try content.withUnsafeBytes { try z.compress($0, last: true) { frame.append(contentsOf: $0) } }
            let out = try frame.withUnsafeBytes { try Zstd.decompressPrefix($0, limit: Int.max, path: "x") }
            #expect(out == content, "size \(size)")
            let n = try frame.withUnsafeBytes { try Zstd.decompressedLength($0, upTo: Int.max, path: "x") }
            #expect(n == size)
            // Two frames back to back.
            let two = try (frame + frame).withUnsafeBytes { try Zstd.decompressPrefix($0, limit: Int.max, path: "x") }
            #expect(two == content + content)
            if frame.count > 8 {
                #expect(throws: ScalpelError.self) {
                    try Array(frame.dropLast(3)).withUnsafeBytes { _ = try Zstd.decompressPrefix($0, limit: Int.max, path: "x") }
                }
            }
        }
    }

    /// CI once found `scalpel-zstd-XXXXXX` left in TMPDIR by a SIGTERM that fell between mkstemp and
    /// unlink: the decompression target must never have a name the cleanup thread could miss.
    @Test func decompressionTargetIsNamelessFromTheStart() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        var template = Array((dir.path + "/scalpel-zstd-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { scalpel_temp_create_anonymous(dir.path, $0.baseAddress!) }
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(dir.entries() == [])
        #expect([UInt8](repeating: 7, count: 3).withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, 3) } == 3)
        var st = stat()
        #expect(fstat(fd, &st) == 0 && st.st_size == 3 && st.st_nlink == 0)
    }

    @Test func temporaryNamesCarryThePID() {
        #expect(Temporaries.ownerPID(ofTemporary: ".model.safetensors.tmp-1234-aB3xYz") == 1234)
        #expect(Temporaries.ownerPID(ofTemporary: ".model.safetensors.tmp-aB3xYz") == nil)
        #expect(Temporaries.ownerPID(ofTemporary: "model.safetensors.tmp-1234-aB3xYz") == nil)
        #expect(Temporaries.ownerPID(ofTemporary: ".x.tmp-12-abc") == nil)
        let t = Temporaries.template(for: "/a/b/out.gguf")
        #expect(t == "/a/b/.out.gguf.tmp-\(getpid())-XXXXXX")
    }

    @Test func writingOverAnInputIsRefusedEvenWithForce() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let input = dir.file("in.safetensors")
        try SafetensorsWriter.write([f32Tensor("a", [2], [1, 2])], metadata: Metadata(), to: input)
        let before = try Data(contentsOf: URL(fileURLWithPath: input))
        let c = try CheckpointReader.open(input)
        let link = dir.file("link.safetensors")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: input)
        #expect(Glibc.link(input, dir.file("hard.safetensors")) == 0)
        for target in [input, link, dir.file("hard.safetensors")] {
            let plan = Plan(destination: try Destination(path: target), tensors: [f32Tensor("a", [2], [3, 4])],
                            metadata: Metadata(), inputs: c.sourcePaths)
            #expect(throws: ScalpelError.self) { _ = try Pipeline.write(plan, options: .init(force: true)) }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: input)) == before)
        #expect(dir.entries() == ["hard.safetensors", "in.safetensors", "link.safetensors"])
    }

    @Test func staleTemporariesOfDeadProcessesAreSwept() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        writeBytes([1], to: dir.file(".a.safetensors.tmp-999999999-abcdef"))
        writeBytes([1], to: dir.file(".b.safetensors.tmp-\(getpid())-abcdef"))
        try FileManager.default.createDirectory(atPath: dir.file(".c.tmp-999999998-ZZZZZZ"), withIntermediateDirectories: false)
        writeBytes([1], to: dir.file(".c.tmp-999999998-ZZZZZZ/model.safetensors"))
        let removed = Temporaries.sweepStale(in: dir.path)
        #expect(removed.sorted() == [".a.safetensors.tmp-999999999-abcdef", ".c.tmp-999999998-ZZZZZZ"])
        #expect(dir.entries() == [".b.safetensors.tmp-\(getpid())-abcdef"])
    }

    @Test func strictAdapterConfigTypes() throws {
        func config(_ extra: String) throws -> AdapterConfig {
            let prefix = extra.contains("peft_type") ? "\"task_type\": \"CAUSAL_LM\"" : "\"peft_type\": \"LORA\""
            return try AdapterConfig(json: try JSONParser.parse("{\(prefix)\(extra)}"), file: "adapter_config.json")
        }
        #expect(try config(", \"r\": 4, \"lora_alpha\": 16").scaling(for: "q") == 4)
        #expect(try config(", \"r\": 4, \"lora_alpha\": null").loraAlpha == 8)
        for bad in [", \"lora_alpha\": \"x\"", ", \"r\": \"4\"", ", \"r\": 0", ", \"r\": 2.5", ", \"use_dora\": 1",
                    ", \"rank_pattern\": {\"(\": 4}", ", \"alpha_pattern\": {\"a\": \"1\"}", ", \"rank_pattern\": [1]",
                    ", \"target_modules\": [1]", ", \"modules_to_save\": \"x\"", ", \"peft_type\": 3",
                    ", \"lora_alpha\": 1e999"] {
            #expect(throws: ScalpelError.self, "\(bad)") { _ = try config(bad) }
        }
    }

    @Test func headerSumsThatOverflowAreRefused() throws {
        var entries: [String] = []
        for i in 0..<16 {
            let size = (1 << 59) - (i == 15 ? 1 : 0)
            entries.append("\"t\(i)\":{\"dtype\":\"U8\",\"shape\":[\(size)],\"data_offsets\":[\(i << 59),\((i << 59) + size)]}")
        }
        let bytes = safetensorsBytes(header: "{" + entries.joined(separator: ",") + "}")
        #expect(throws: ScalpelError.self) {
            try bytes.withUnsafeBytes { _ = try SafetensorsHeader.parse($0, fileLength: nil, file: "x") }
        }
    }

    @Test func compressedHeaderOfABombCostsLittle() throws {
        // A GGUF header whose u8 array declares 2^40 elements, then 64 MiB of zeros.
        var head: [UInt8] = Array("GGUF".utf8)
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { head += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { head += $0 } }
        u32(3); u64(0); u64(1); u64(4); head += Array("bomb".utf8); u32(9); u32(0); u64(1 << 40)
        let z = try ZstdCompressor(level: 1, path: "x")
        var frame: [UInt8] = []
        try head.withUnsafeBytes { try z.compress($0, last: false) { frame.append(contentsOf: $0) } }
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        for k in 0..<64 {
            try zeros.withUnsafeBytes { try z.compress($0, last: k == 63) { frame.append(contentsOf: $0) } }
        }
        #expect(frame.count < 100_000)
        #expect(throws: ScalpelError.self) {
            try frame.withUnsafeBytes { _ = try CheckpointReader.open(bytes: $0, path: "bomb.gguf.zst", headerOnly: true) }
        }
    }
}

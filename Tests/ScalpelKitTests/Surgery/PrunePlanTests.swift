import Foundation
import Testing
@testable import ScalpelKit

/// End-to-end through files: plan, write, read back.
@Suite struct PrunePlanTests {
    /// A fresh folder for one test.
    struct Folder {
        let path = NSTemporaryDirectory() + "scalpel-prune-test-" + UUID().uuidString
        init() { try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        func file(_ name: String) -> String { path + "/" + name }
        func remove() { try? FileManager.default.removeItem(atPath: path) }
    }

    static func tensor(_ name: String, _ shape: [Int], _ values: [Float]) -> OutputTensor {
        OutputTensor(name: name, type: .plain(.f32), shape: shape, content: .filling { buf in
            values.withUnsafeBytes { buf.copyMemory(from: $0) }
        })
    }

    /// Prunes `tensors` written as safetensors; returns the output values by name and the report.
    static func prune(_ tensors: [OutputTensor], _ method: Prune.Method, in folder: Folder) throws -> ([String: [Float]], PruneReport) {
        let input = folder.file("in.safetensors"), output = folder.file("out.safetensors")
        try SafetensorsWriter.write(tensors, metadata: Metadata([]), to: input)
        let ckpt = try CheckpointReader.open(input)
        let dest = try Destination(path: output)
        let report = try Prune.plan(ckpt, for: dest, options: .init(method: method)).written(as: PruneReport.self)
        let back = try CheckpointReader.open(output)
        var values: [String: [Float]] = [:]
        for t in back.tensors { values[t.name] = try FloatConversion.floats(back.view(t.name)) }
        return (values, report)
    }

    @Test func globalScopeIsOneThresholdOverAllTensorsWithTiesInTensorOrder() throws {
        let folder = Folder()
        defer { folder.remove() }
        // Tied data across three tensors of different sizes; ties at the threshold must go to the
        // earlier tensor (file order) first, then by position.
        let a = PruneTestData.ties(3000, seed: 41), b = PruneTestData.ties(5000, seed: 42), c = PruneTestData.random(1200, seed: 43)
        let names = ["a.weight", "b.weight", "c.weight"]
        let (out, report) = try Self.prune([Self.tensor(names[0], [30, 100], a), Self.tensor(names[1], [50, 100], b),
                                       Self.tensor(names[2], [12, 100], c), Self.tensor("norm.weight", [100], Array(repeating: 0.001, count: 100))],
                                      .global(.sparsity(0.37)), in: folder)
        let all = a + b + c
        let k = Prune.Amount.sparsity(0.37).count(of: all.count)
        let expected = PruneTestData.referenceRemoved(all[...], k)
        var removed = 0
        for (offset, (name, values)) in zip([0, 3000, 8000], zip(names, [a, b, c])) {
            let got = out[name]!
            for i in values.indices {
                let gone = expected.contains(offset + i)
                #expect(got[i].bitPattern == (gone ? 0 : values[i].bitPattern))
                if gone { removed += 1 }
            }
        }
        #expect(removed == k)
        #expect(report.total.zeroed == k)
        #expect(report.tensors.map { $0.name } == names)
        #expect(report.skipped.map { $0.name } == ["norm.weight"])
        #expect(out["norm.weight"]! == Array(repeating: 0.001, count: 100))
    }

    @Test func globalScopeOnDistinctValues() throws {
        let folder = Folder()
        defer { folder.remove() }
        let a = PruneTestData.random(70_000, seed: 51), b = PruneTestData.random(20_000, seed: 52).map { $0 * 0.1 }
        let (out, report) = try Self.prune([Self.tensor("x.weight", [700, 100], a), Self.tensor("y.weight", [200, 100], b)], .global(.keep(0.25)), in: folder)
        let all = a + b
        let k = Prune.Amount.keep(0.25).count(of: all.count)
        let expected = PruneTestData.referenceRemoved(all[...], k)
        let got = out["x.weight"]! + out["y.weight"]!
        #expect(Set(got.indices.filter { got[$0].bitPattern == 0 }) == expected)
        #expect(report.total.zeroed == k)
        // The smaller-scaled tensor loses more: a global threshold, not per-tensor fractions.
        #expect(report.tensors[1].counts.achievedSparsity > report.tensors[0].counts.achievedSparsity)
    }

    @Test func reportJSONHasTheContractKeys() throws {
        let folder = Folder()
        defer { folder.remove() }
        let (_, report) = try Self.prune([Self.tensor("l.weight", [4, 8], PruneTestData.random(32, seed: 3))], .pattern(keep: 2, group: 4), in: folder)
        let json = report.json
        let entry = json["tensors"]!.arrayValue![0]
        #expect(entry.objectValue!.map { $0.0 } == ["name", "shape", "dtype", "elements", "target_sparsity", "achieved_sparsity", "zeroed",
                                                     "norm_removed_fraction", "requantized_to", "requantization_relative_rmse"])
        #expect(entry["requantized_to"] == .null)
        #expect(entry["shape"] == [4, 8])
        #expect(entry["dtype"] == "F32")
        #expect(entry["zeroed"] == 16)
        #expect(entry["achieved_sparsity"] == 0.5)
        #expect(json["total"]!["target_sparsity"] == 0.5)
        #expect(json["pattern"] == "2:4")
    }

    @Test func patternRowLengthMustBeAMultipleOfM() throws {
        let folder = Folder()
        defer { folder.remove() }
        let e = #expect(throws: ScalpelError.self) {
            _ = try Self.prune([Self.tensor("odd.weight", [2, 6], PruneTestData.random(12, seed: 1))], .pattern(keep: 2, group: 4), in: folder)
        }
        #expect(e == .invalid(file: folder.file("in.safetensors"), tensor: "odd.weight",
                              reason: "row length 6 (shape [2, 6]) is not a multiple of 4, as --pattern 2:4 needs"))
        #expect(!FileManager.default.fileExists(atPath: folder.file("out.safetensors")))
    }

    @Test func quantizedTensorsArePrunedOnDequantizedValuesAndRequantized() throws {
        let folder = Folder()
        defer { folder.remove() }
        let input = folder.file("in.gguf")
        let values = PruneTestData.random(64 * 128, seed: 61)
        let q8 = OutputTensor(name: "blk.0.ffn_up.weight", type: .block(.q8_0), shape: [64, 128], content: .filling { buf in
            try values.withUnsafeBufferPointer { try GGMLQuantize.quantize(.q8_0, $0, into: buf) }
        })
        try GGUFWriter.write([q8], metadata: Metadata([("general.architecture", .string("llama"))]), to: input)
        let ckpt = try CheckpointReader.open(input)
        let stored = try GGMLTestValues.dequantized(ckpt, "blk.0.ffn_up.weight")
        for (name, expectType) in [("out.gguf", TensorType.block(.q8_0)), ("out.safetensors", .plain(.f32))] {
            let dest = try Destination(path: folder.file(name))
            let report = try Prune.plan(ckpt, for: dest, options: .init(method: .tensor(.sparsity(0.5)))).written(as: PruneReport.self)
            let back = try CheckpointReader.open(folder.file(name))
            #expect(back.tensors[0].type == expectType)
            let got = try GGMLTestValues.dequantized(back, "blk.0.ffn_up.weight")
            // The mask follows the dequantized input; Q8_0 keeps zeros exact and the kept values exactly.
            let removed = PruneTestData.referenceRemoved(stored[...], stored.count / 2)
            for i in stored.indices { #expect(got[i] == (removed.contains(i) ? 0 : stored[i])) }
            #expect(report.tensors[0].counts.zeroed == stored.count / 2)
            #expect(report.tensors[0].counts.zerosAfter == stored.count / 2)
            #expect(report.tensors[0].requantization?.type == (name.hasSuffix(".gguf") ? .q8_0 : nil))
        }
    }

    @Test func unsupportedAndNonFloatTensorsAreRefusedNamingFileAndTensor() {
        let q = TensorInfo(name: "blk.0.ffn_up.weight", type: .block(GGMLType(name: "IQ2_XXS")!), shape: [2, 256], byteCount: 132)
        let e = #expect(throws: ScalpelError.self) { try Prune.check(q, file: "m.gguf", method: .tensor(.sparsity(0.5)), toGGUF: true) }
        #expect(e?.description.hasPrefix("m.gguf: blk.0.ffn_up.weight: prune of quantized tensors needs dequantization") == true)
        let k = TensorInfo(name: "blk.1.ffn_up.weight", type: .block(.q4_K), shape: [2, 256], byteCount: 288)
        let e2 = #expect(throws: ScalpelError.self) { try Prune.check(k, file: "m.gguf", method: .tensor(.sparsity(0.5)), toGGUF: true) }
        #expect(e2?.description.hasPrefix("m.gguf: blk.1.ffn_up.weight: prune of quantized tensors needs re-quantization") == true)
        #expect(throws: Never.self) { try Prune.check(k, file: "m.gguf", method: .tensor(.sparsity(0.5)), toGGUF: false) }
        let i8 = TensorInfo(name: "x.weight", type: .plain(.i8), shape: [2, 2], byteCount: 4)
        let e3 = #expect(throws: ScalpelError.self) { try Prune.check(i8, file: "m.safetensors", method: .row(.keep(0.5)), toGGUF: false) }
        #expect(e3 == .invalid(file: "m.safetensors", tensor: "x.weight", reason: "cannot prune I8 values (only F32, F16, BF16 and F64)"))
    }
}

/// Reads a tensor's values as f32, dequantizing ggml block types.
enum GGMLTestValues {
    static func dequantized(_ ckpt: Checkpoint, _ name: String) throws -> [Float] {
        let view = try ckpt.view(name)
        return try Prune.withMagnitudes(view, file: ckpt.path) { source in
            (0..<source.count).map { i in
                source.withBits(i..<(i + 1)) { Float(bitPattern: $0.loadUnaligned(as: UInt32.self)) }
            }
        }
    }
}

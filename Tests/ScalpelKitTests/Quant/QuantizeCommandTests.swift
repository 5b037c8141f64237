import Foundation
import Testing
@testable import ScalpelKit

/// The quantize and dequantize commands end to end through the library: `Quantize.plan` and
/// `Pipeline.write` into a temporary folder, then the written files read back.
@Suite struct QuantizeCommandTests {
    // MARK: helpers

    /// A float tensor to write, stored as `dtype` (F32, F16 or BF16; values rounded to it).
    static func tensor(_ name: String, _ shape: [Int], _ values: [Float], _ dtype: DType = .f32) -> OutputTensor {
        OutputTensor(name: name, type: .plain(dtype), shape: shape, content: .filling { buf in
            try values.withUnsafeBufferPointer { try FloatConversion.encode($0, as: dtype, into: buf) }
        })
    }

    /// `values` rounded to `dtype` and widened back, as a reader sees them.
    static func stored(_ values: [Float], _ dtype: DType) throws -> [Float] {
        var bytes = [UInt8](repeating: 0, count: values.count * (dtype == .f32 ? 4 : 2))
        try values.withUnsafeBufferPointer { v in try bytes.withUnsafeMutableBytes { try FloatConversion.encode(v, as: dtype, into: $0) } }
        var out = [Float](repeating: 0, count: values.count)
        try bytes.withUnsafeBytes { b in try out.withUnsafeMutableBufferPointer { try FloatConversion.decode(.plain(dtype), b, into: $0) } }
        return out
    }

    /// Writes `tensors` as `in.safetensors` in `dir`, quantizes it to `output` (a name in `dir`) with
    /// `options`, and returns the plan and the output opened.
    static func quantize(_ tensors: [OutputTensor], to output: String, in dir: TempDir, _ options: Quantize.Options) throws -> (Quantized, Checkpoint) {
        let input = dir.file("in.safetensors")
        if !FileManager.default.fileExists(atPath: input) {
            try SafetensorsWriter.write(tensors, metadata: Metadata([("format", .string("pt"))]), to: input)
        }
        let dest = try Destination(path: dir.file(output))
        let plan = try Quantize.plan(try CheckpointReader.open(input), for: dest, options: options)
        let report = try plan.written(as: QuantizeReport.self)
        return (Quantized(report: report, metadata: plan.metadata), try CheckpointReader.open(dir.file(output)))
    }

    /// A quantize run's report and output metadata.
    struct Quantized {
        var report: QuantizeReport
        var metadata: Metadata
    }

    static func options(_ type: QuantType, _ configure: (inout Quantize.Options) -> Void = { _ in }) -> Quantize.Options {
        var o = Quantize.Options(type: type)
        configure(&o)
        return o
    }

    static func bytes(_ c: Checkpoint, _ name: String) throws -> [UInt8] { Array(try c.view(name).bytes) }

    static func floats(_ c: Checkpoint, _ name: String) throws -> [Float] { try FloatConversion.floats(try c.view(name)) }

    static func error(_ original: [Float], _ reconstructed: [Float]) -> QuantError {
        original.withUnsafeBufferPointer { o in reconstructed.withUnsafeBufferPointer { QuantError.measure(original: o, reconstructed: $0) } }
    }

    /// A small model: linear weights, an embedding, a head, a norm, a bias, a 3-D tensor and an integer one.
    static let q = normalSamples(8 * 64, seed: 1), up = normalSamples(16 * 128, seed: 2)
    static let embed = normalSamples(16 * 64, seed: 3), head = normalSamples(16 * 64, seed: 4)
    static let norm = normalSamples(64, seed: 5), bias = normalSamples(16, seed: 6), conv = normalSamples(2 * 4 * 64, seed: 7)
    static var model: [OutputTensor] {
        [tensor("model.layers.0.self_attn.q_proj.weight", [8, 64], q),
         tensor("model.layers.0.mlp.up_proj.weight", [16, 128], up, .bf16),
         tensor("model.embed_tokens.weight", [16, 64], embed),
         tensor("lm_head.weight", [16, 64], head),
         tensor("model.layers.0.input_layernorm.weight", [64], norm, .f16),
         tensor("model.layers.0.mlp.up_proj.bias", [16], bias),
         tensor("model.layers.0.conv.weight", [2, 4, 64], conv),
         OutputTensor(name: "position_ids", type: .plain(.i64), shape: [4], content: .filling { buf in
             [Int64](0..<4).withUnsafeBytes { buf.copyMemory(from: $0) }
         })]
    }

    static func types(_ c: Checkpoint) -> [String: String] {
        Dictionary(uniqueKeysWithValues: c.tensors.map { ($0.name, $0.type.description) })
    }

    // MARK: selection and GGUF

    @Test func defaultSelectionQuantizesOnlyLinearWeights() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let (plan, out) = try Self.quantize(Self.model, to: "out.gguf", in: dir, Self.options(.q4_0))
        #expect(Self.types(out) == [
            "model.layers.0.self_attn.q_proj.weight": "Q4_0",
            "model.layers.0.mlp.up_proj.weight": "Q4_0",
            "model.embed_tokens.weight": "F32",
            "lm_head.weight": "F32",
            "model.layers.0.input_layernorm.weight": "F32",  // 1-D F16 -> F32 in GGUF, as llama.cpp writes norms
            "model.layers.0.mlp.up_proj.bias": "F32",
            "model.layers.0.conv.weight": "F32",
            "position_ids": "I64",
        ])
        // Blocks equal the kernel's on the stored values; kept tensors are unchanged (norm widened exactly).
        #expect(try Self.bytes(out, "model.layers.0.self_attn.q_proj.weight") == ggmlQuantized(.q4_0, Self.q))
        #expect(try Self.bytes(out, "model.layers.0.mlp.up_proj.weight") == ggmlQuantized(.q4_0, Self.stored(Self.up, .bf16)))
        #expect(bitPatterns(try Self.floats(out, "model.layers.0.input_layernorm.weight")) == bitPatterns(try Self.stored(Self.norm, .f16)))
        #expect(bitPatterns(try Self.floats(out, "lm_head.weight")) == bitPatterns(Self.head))
        #expect(out.metadata["general.file_type"] == .uint32(2))
        #expect(out.metadata["general.quantization_version"] == .uint32(2))
        #expect(out.metadata["format"] == .string("pt"))
        let e = plan.report.entries
        #expect(e.filter(\.quantized).map(\.name) == ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight"])
        #expect(e.count == 8)

        let (_, all) = try Self.quantize([], to: "all.gguf", in: dir, Self.options(.q8_0) {
            $0.selection = TensorSelection(includeEmbeddings: true, includeHead: true)
        })
        #expect(Self.types(all)["model.embed_tokens.weight"] == "Q8_0")
        #expect(Self.types(all)["lm_head.weight"] == "Q8_0")
        #expect(Self.types(all)["model.layers.0.conv.weight"] == "F32")
        #expect(all.metadata["general.file_type"] == .uint32(7))
    }

    @Test func typeForRulesLastMatchWinsOnAnyTensor() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let (_, out) = try Self.quantize(Self.model, to: "out.gguf", in: dir, Self.options(.q4_0) {
            $0.selection.skip = ["*.q_proj.*"]
            $0.typeFor = [("*.weight", .q8_0), ("*_proj.weight", .q5_1), ("*.up_proj.*", .q4_1), ("position_ids", .q8_0)]
        })
        let t = Self.types(out)
        #expect(t["model.layers.0.self_attn.q_proj.weight"] == "Q5_1")  // a rule beats --skip
        #expect(t["model.layers.0.mlp.up_proj.weight"] == "Q4_1")
        #expect(t["model.layers.0.mlp.up_proj.bias"] == "F16")  // 16 values: not a whole block -> F16 fallback
        #expect(t["lm_head.weight"] == "Q8_0")
        #expect(t["model.layers.0.conv.weight"] == "Q8_0")
        #expect(t["position_ids"] == "I64")  // not a float tensor: kept
        #expect(out.metadata["general.file_type"] == .uint32(2))
    }

    @Test func typeForAnotherLayoutIsRefused() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        #expect(throws: ScalpelError.self) {
            try Self.quantize(Self.model, to: "out.gguf", in: dir, Self.options(.q4_0) { $0.typeFor = [("*", .nf4)] })
        }
        #expect(throws: ScalpelError.self) { try Self.quantize([], to: "out.safetensors", in: dir, Self.options(.q4_0)) }
        #expect(throws: ScalpelError.self) { try Self.quantize([], to: "out.gguf", in: dir, Self.options(.int4)) }
        #expect(dir.entries() == ["in.safetensors"])
    }

    // MARK: fallbacks

    @Test func fallbacksAreNoted() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let odd = normalSamples(6 * 40, seed: 11), ok = normalSamples(6 * 256, seed: 12)
        let tensors = [Self.tensor("a.odd.weight", [6, 40], odd), Self.tensor("a.ok.weight", [6, 256], ok)]
        let (plan, out) = try Self.quantize(tensors, to: "out.gguf", in: dir, Self.options(.q5_0))
        #expect(Self.types(out) == ["a.odd.weight": "F16", "a.ok.weight": "Q5_0"])
        let byName = Dictionary(uniqueKeysWithValues: plan.report.entries.map { ($0.name, $0) })
        #expect(byName["a.odd.weight"]?.note == "row length 40 is not a multiple of 32: written as F16")
        #expect(byName["a.odd.weight"]?.to == "F16")
        #expect(bitPatterns(try Self.floats(out, "a.odd.weight")) == bitPatterns(try Self.stored(odd, .f16)))
        #expect(byName["a.odd.weight"]?.relativeRMSE == Self.error(odd, try Self.stored(odd, .f16)).relativeRMSE)
        #expect(plan.report.text().contains("1 tensor: row length 40 is not a multiple of 32: written as F16"))

        // int4: a group size that does not divide the row keeps the tensor.
        let (p4, out4) = try Self.quantize([], to: "out.safetensors", in: dir, Self.options(.int4) { $0.groupSize = 128 })
        let e4 = Dictionary(uniqueKeysWithValues: p4.report.entries.map { ($0.name, $0) })
        #expect(e4["a.odd.weight"]?.note == "40 input features are not a multiple of the group size 128: kept")
        #expect(e4["a.odd.weight"]?.quantized == false)
        #expect(e4["a.ok.weight"]?.to == "INT4")
        #expect(Set(out4.tensors.map(\.name)) == ["a.odd.weight", "a.ok.weight_packed", "a.ok.weight_scale", "a.ok.weight_shape"])
    }

    @Test func requantizingIsRefusedWithoutAllowRequantize() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let x = normalSamples(8 * 64, seed: 21)
        _ = try Self.quantize([Self.tensor("a.weight", [8, 64], x)], to: "q8.gguf", in: dir, Self.options(.q8_0))
        let source = try CheckpointReader.open(dir.file("q8.gguf"))
        for (type, output) in [(QuantType.q4_0, "q4.gguf"), (.nf4, "nf4.safetensors"), (.f16, "f16.gguf")] {
            #expect(throws: ScalpelError.self) { try Quantize.plan(source, for: try Destination(path: dir.file(output)), options: Self.options(type)) }
        }
        do {
            _ = try Quantize.plan(source, for: try Destination(path: dir.file("q4.gguf")), options: Self.options(.q4_0))
        } catch let ScalpelError.invalid(_, tensor, reason) {
            #expect(tensor == "a.weight")
            #expect(reason.contains("already quantized (Q8_0)") && reason.contains("--allow-requantize"))
        }
        // The same type is a copy, not a requantization.
        _ = try Quantize.plan(source, for: try Destination(path: dir.file("again.gguf")), options: Self.options(.q8_0))
    }

    @Test func requantizingDequantizesFirstOrCopies() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let x = normalSamples(8 * 64, seed: 21)
        let (_, q8) = try Self.quantize([Self.tensor("a.weight", [8, 64], x)], to: "q8.gguf", in: dir, Self.options(.q8_0))
        let q8Bytes = try Self.bytes(q8, "a.weight")
        let source = try CheckpointReader.open(dir.file("q8.gguf"))
        for (type, output) in [(QuantType.q4_0, "q4.gguf"), (.q8_0, "again.gguf"), (.nf4, "nf4.safetensors")] {
            let dest = try Destination(path: dir.file(output))
            let plan = Quantized(report: try Quantize.plan(source, for: dest, options: Self.options(type) { $0.allowRequantize = true }).written(), metadata: Metadata())
            let out = try CheckpointReader.open(dir.file(output))
            let note = plan.report.entries[0].note
            switch type {
            case .q8_0:
                #expect(note == "already Q8_0: copied unchanged")
                #expect(try Self.bytes(out, "a.weight") == q8Bytes)
            case .q4_0:
                #expect(note == "was Q8_0: dequantized first")
                #expect(try Self.bytes(out, "a.weight") == ggmlQuantized(.q4_0, try ggmlDequantized(.q8_0, q8Bytes)))
            default:
                #expect(note == "was Q8_0: dequantized first")
                let expected = try ggmlDequantized(.q8_0, q8Bytes).withUnsafeBufferPointer { try FourBit.quantize($0, kind: .nf4) }
                #expect(try Self.bytes(out, "a.weight") == expected.codes)
            }
        }
    }

    // MARK: report

    @Test func reportFiguresMatchTheWrittenFile() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let a = normalSamples(32 * 256, seed: 31), b = normalSamples(16 * 256, seed: 32).map { $0 * 0.02 }
        let tensors = [Self.tensor("m.a.weight", [32, 256], a), Self.tensor("m.b.weight", [16, 256], b, .bf16),
                       Self.tensor("m.norm.weight", [256], Self.norm + Self.norm + Self.norm + Self.norm)]
        let (plan, out) = try Self.quantize(tensors, to: "out.gguf", in: dir, Self.options(.q4_1))
        let entries = plan.report.entries
        // Input order, which is the file's: the reference writer puts 4-byte dtypes before 2-byte ones.
        #expect(entries.map(\.name) == ["m.a.weight", "m.norm.weight", "m.b.weight"])
        let byName = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })
        for (name, values) in [("m.a.weight", a), ("m.b.weight", try Self.stored(b, .bf16))] {
            let r = try #require(byName[name])
            let rebuilt = try ggmlDequantized(.q4_1, try Self.bytes(out, name))
            let e = Self.error(values, rebuilt)
            #expect(r.relativeRMSE == e.relativeRMSE, "\(name)")
            #expect(r.sqnrDB == e.sqnrDB, "\(name)")
            #expect(abs(r.sqnrDB! + 20 * log10(r.relativeRMSE!)) < 1e-9)
            #expect(r.bytesAfter == values.count / 32 * 20)
            #expect(r.to == "Q4_1")
        }
        #expect(byName["m.a.weight"]?.bytesBefore == a.count * 4 && byName["m.b.weight"]?.bytesBefore == b.count * 2)
        #expect(byName["m.norm.weight"]?.quantized == false && byName["m.norm.weight"]?.bytesAfter == 256 * 4)
        let json = plan.report.json
        #expect(json["tensors_quantized"]?.intValue == 2)
        #expect(json["tensors_kept"]?.intValue == 1)
        let after = entries.reduce(0) { $0 + $1.bytesAfter }, params = entries.reduce(0) { $0 + $1.parameters }
        #expect(json["bytes_after"]?.intValue == after)
        #expect(json["bits_per_parameter"]?.doubleValue == Double(after) * 8 / Double(params))
        // The summary lists the worst tensor first.
        let text = plan.report.text()
        let worst = entries.filter(\.quantized).max { $0.relativeRMSE! < $1.relativeRMSE! }!.name
        let firstRow = text.split(separator: "\n").first { $0.contains("m.a.weight") || $0.contains("m.b.weight") }!
        #expect(firstRow.contains(worst))
        #expect(text.hasPrefix("quantized 2 tensors to q4_1 (gguf), kept 1"))
    }

    /// A preset mixes types: the summary names the preset and counts each type, in order of first use.
    @Test func summaryOfAMixedQuantization() {
        var report = QuantizeReport(type: "Q4_K_M", layout: "gguf")
        for (name, to, rmse) in [("a", "Q4_K", 0.04), ("b", "Q6_K", 0.01), ("c", "Q4_K", 0.05), ("d", "F32", nil)] as [(String, String, Double?)] {
            report.record(TensorQuantResult(name: name, shape: [256], from: "F32", to: to, parameters: 256, bytesBefore: 1024,
                                            bytesAfter: 144, relativeRMSE: rmse, sqnrDB: rmse.map { -20 * log10($0) }))
        }
        #expect(report.text().hasPrefix("quantized 3 tensors to Q4_K_M (gguf: 2 Q4_K, 1 Q6_K), kept 1\n"))
    }

    @Test func gaussianRoundTripErrors() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let x = normalSamples(256 * 1024, seed: 41)
        try SafetensorsWriter.write([Self.tensor("m.w.weight", [256, 1024], x)], metadata: Metadata([]), to: dir.file("in.safetensors"))
        // (type, configure, expected relative RMSE on N(0, 1) within 10%)
        let cases: [(QuantType, (inout Quantize.Options) -> Void, Double, String)] = [
            (.q8_0, { _ in }, 0.00535, "out.gguf"), (.q4_0, { _ in }, 0.0858, "out.gguf"),
            (.q4_1, { _ in }, 0.0781, "out.gguf"), (.q5_0, { _ in }, 0.0427, "out.gguf"),
            (.q5_1, { _ in }, 0.0378, "out.gguf"),
            (.nf4, { _ in }, 0.0921, "out.safetensors"), (.fp4, { _ in }, 0.1221, "out.safetensors"),
            (.nf4, { $0.doubleQuant = true; $0.blockSize = 128 }, 0.0956, "out.safetensors"),
            (.int8, { _ in }, 0.00787, "out.safetensors"),
            (.int4, { _ in }, 0.1108, "out.safetensors"), (.int4, { $0.asymmetric = true }, 0.1005, "out.safetensors"),
        ]
        for (type, configure, expected, output) in cases {
            try? FileManager.default.removeItem(atPath: dir.file(output))
            let (plan, _) = try Self.quantize([], to: output, in: dir, Self.options(type, configure))
            let r = try #require(plan.report.entries.first)
            #expect(abs(r.relativeRMSE! - expected) <= 0.1 * expected, "\(type.rawValue): \(r.relativeRMSE!) vs \(expected)")
        }
    }

    // MARK: non-finite values

    @Test func nonFiniteValuesFailNamingTheTensorAndLeaveNoFile() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        var x = normalSamples(4 * 128, seed: 51)
        x[77] = .nan
        try SafetensorsWriter.write([Self.tensor("a.ok.weight", [4, 128], normalSamples(4 * 128, seed: 52)), Self.tensor("a.bad.weight", [4, 128], x)],
                                    metadata: Metadata([]), to: dir.file("in.safetensors"))
        for (type, output) in [(QuantType.q8_0, "out.gguf"), (.nf4, "out.safetensors"), (.int8, "out.safetensors"), (.int4, "out.safetensors")] {
            do {
                _ = try Self.quantize([], to: output, in: dir, Self.options(type))
                Issue.record("\(type.rawValue): a NaN was quantized without --allow-nonfinite")
            } catch let e as ScalpelError {
                #expect(e.description.contains("a.bad.weight") && e.description.contains("NaN"), "\(type.rawValue): \(e)")
            }
            #expect(dir.entries() == ["in.safetensors"], "\(type.rawValue)")
        }
        // Allowed: the safetensors layouts quantize it.
        for type in [QuantType.nf4, .int8, .int4] {
            try? FileManager.default.removeItem(atPath: dir.file("out.safetensors"))
            let (plan, _) = try Self.quantize([], to: "out.safetensors", in: dir, Self.options(type) { $0.allowNonfinite = true })
            #expect(plan.report.entries.filter(\.quantized).count == 2)
        }
    }

    // MARK: dequantize round trips through LogicalTensors

    /// Each safetensors layout: the logical tensor resolved from the written parts decodes to the kernel's
    /// own dequantization, and `Dequantize` writes those values back as plain floats.
    @Test(arguments: ["nf4", "nf4-dq", "fp4-128", "int8", "int4-g32", "int4-asym", "int8-ct"])
    func dequantizeRoundTrip(layout: String) throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let w = normalSamples(24 * 128, seed: 61).map { $0 * 0.05 }
        let stored = try Self.stored(w, .bf16)
        let tensors = [Self.tensor("m.l.weight", [24, 128], w, .bf16), Self.tensor("m.l.bias", [24], Array(w.prefix(24)))]
        var o = Self.options(.nf4)
        let expected: [Float]
        let storage: String, parts: [String], original: DType?
        switch layout {
        case "nf4", "nf4-dq", "fp4-128":
            let kind: FourBitKind = layout.hasPrefix("nf4") ? .nf4 : .fp4
            o.type = kind == .nf4 ? .nf4 : .fp4
            o.doubleQuant = layout == "nf4-dq"
            o.blockSize = layout == "fp4-128" ? 128 : 64
            let q = try stored.withUnsafeBufferPointer { try FourBit.quantize($0, kind: kind, blockSize: o.blockSize, doubleQuant: o.doubleQuant) }
            var out = [Float](repeating: 0, count: w.count)
            out.withUnsafeMutableBufferPointer { FourBit.dequantize(q, into: $0) }
            expected = out
            storage = kind.rawValue.uppercased()
            let state = "m.l.weight.quant_state.bitsandbytes__" + kind.rawValue
            parts = ["m.l.weight", "m.l.weight.absmax", "m.l.weight.quant_map", state]
                + (o.doubleQuant ? ["m.l.weight.nested_absmax", "m.l.weight.nested_quant_map"] : [])
            original = .bf16
        case "int8":
            o.type = .int8
            let q = stored.withUnsafeBufferPointer { BnbInt8.quantize($0, rows: 24, columns: 128) }
            var out = [Float](repeating: 0, count: w.count)
            out.withUnsafeMutableBufferPointer { BnbInt8.dequantize(q, into: $0) }
            expected = out
            storage = "INT8"
            parts = ["m.l.weight", "m.l.SCB", "m.l.weight_format"]
            original = nil
        default:
            let bits = layout == "int8-ct" ? 8 : 4
            o.type = bits == 8 ? .int8 : .int4
            o.int8Format = .compressedTensors
            o.groupSize = 32
            o.asymmetric = layout == "int4-asym"
            let strategy: CompressedTensors.Strategy = bits == 8 ? .channel : .group(32)
            let q = try stored.withUnsafeBufferPointer {
                try CompressedTensors.quantize($0, rows: 24, columns: 128, bits: bits, strategy: strategy, symmetric: !o.asymmetric, dtype: .bf16)
            }
            var out = [Float](repeating: 0, count: w.count)
            out.withUnsafeMutableBufferPointer { CompressedTensors.dequantize(q, into: $0) }
            expected = out
            storage = "INT\(bits)"
            parts = ["m.l.weight_packed", "m.l.weight_scale", "m.l.weight_shape"] + (o.asymmetric ? ["m.l.weight_zero_point"] : [])
            original = .bf16
        }
        let (plan, out) = try Self.quantize(tensors, to: "q.safetensors", in: dir, o)
        #expect(plan.report.entries.first { $0.name == "m.l.weight" }?.relativeRMSE == Self.error(stored, expected).relativeRMSE)

        let logical = try LogicalTensors.resolve(out)
        #expect(logical.map(\.name).sorted() == ["m.l.bias", "m.l.weight"])
        let l = try #require(logical.first { $0.name == "m.l.weight" })
        #expect(l.shape == [24, 128])
        #expect(l.storage == storage)
        #expect(l.isQuantized && l.fileIndex == nil)
        #expect(Set(l.parts) == Set(parts) && l.parts.count == parts.count)
        #expect(l.originalDType == original)
        #expect(l.storedBytes == parts.map { out.info(named: $0)!.byteCount }.reduce(0, +))
        #expect(bitPatterns(try l.decode()) == bitPatterns(expected))
        let bias = try #require(logical.first { $0.name == "m.l.bias" })
        #expect(!bias.isQuantized && bias.storage == "F32")

        // Dequantize: F32 on request, else the dtype the layout recorded (BF16; F32 for LLM.int8).
        let src = try CheckpointReader.open(dir.file("q.safetensors"))
        for (dtype, output) in [(DType?.some(.f32), "f32.safetensors"), (nil, "default.safetensors")] {
            let dest = try Destination(path: dir.file(output))
            let summary = try Dequantize.plan(src, for: dest, dtype: dtype).written(as: Dequantize.Summary.self)
            #expect(summary.dequantized.map(\.name) == ["m.l.weight"])
            let back = try CheckpointReader.open(dir.file(output))
            #expect(Set(back.tensors.map(\.name)) == ["m.l.weight", "m.l.bias"])
            let want = dtype ?? original ?? .f32
            #expect(back.info(named: "m.l.weight")?.type == .plain(want))
            #expect(back.info(named: "m.l.weight")?.shape == [24, 128])
            #expect(bitPatterns(try Self.floats(back, "m.l.weight")) == bitPatterns(try Self.stored(expected, want)))
            #expect(bitPatterns(try Self.floats(back, "m.l.bias")) == bitPatterns(Array(w.prefix(24))))
        }
    }

    /// A folder output: the quantization_config the layout asks for, companions copied, and dequantizing
    /// the folder removes the config again.
    @Test func folderOutputCarriesQuantizationConfig() throws {
        let dir = TempDir()
        defer { dir.cleanup() }
        let model = dir.file("model")
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        try SafetensorsWriter.write(Self.model, metadata: Metadata([("format", .string("pt"))]), to: model + "/model.safetensors")
        try #"{"model_type": "llama", "torch_dtype": "bfloat16"}"#.write(toFile: model + "/config.json", atomically: true, encoding: .utf8)
        try "tokens".write(toFile: model + "/tokenizer.json", atomically: true, encoding: .utf8)

        let dest = try Destination(path: dir.file("nf4"))
        try Quantize.plan(try CheckpointReader.open(model), for: dest, options: Self.options(.nf4) { $0.doubleQuant = true }).write()
        let entries = try FileManager.default.contentsOfDirectory(atPath: dir.file("nf4")).sorted()
        #expect(entries == ["config.json", "model.safetensors", "tokenizer.json"])
        let config = try JSONParser.parse(try String(contentsOfFile: dir.file("nf4/config.json"), encoding: .utf8))
        #expect(config["model_type"]?.stringValue == "llama")
        let q = try #require(config["quantization_config"])
        #expect(q["quant_method"]?.stringValue == "bitsandbytes")
        #expect(q["load_in_4bit"] == .bool(true) && q["bnb_4bit_use_double_quant"] == .bool(true))
        #expect(q["bnb_4bit_quant_type"]?.stringValue == "nf4")
        #expect(q["bnb_4bit_compute_dtype"]?.stringValue == "bfloat16")  // the quantized weights include a BF16 one
        #expect(q["llm_int8_skip_modules"] == .array(["lm_head"]))
        #expect(try String(contentsOfFile: dir.file("nf4/tokenizer.json"), encoding: .utf8) == "tokens")

        let back = try Destination(path: dir.file("back"))
        try Dequantize.plan(try CheckpointReader.open(dir.file("nf4")), for: back, dtype: nil).write()
        let restored = try JSONParser.parse(try String(contentsOfFile: dir.file("back/config.json"), encoding: .utf8))
        #expect(restored["quantization_config"] == nil)
        #expect(restored["torch_dtype"]?.stringValue == "bfloat16")
        let c = try CheckpointReader.open(dir.file("back"))
        #expect(c.info(named: "model.layers.0.mlp.up_proj.weight")?.type == .plain(.bf16))
        #expect(c.info(named: "model.layers.0.self_attn.q_proj.weight")?.type == .plain(.f32))
        #expect(c.tensors.count == Self.model.count)
    }
}

import Foundation
import Synchronization

/// The `quantize` command's transform: which tensors become which type, and in what file layout.
public enum Quantize {
    /// How `--type int8` is laid out.
    public enum Int8Format: String, Sendable, CaseIterable {
        /// bitsandbytes LLM.int8 (`weight` I8, `SCB`, `weight_format`).
        case bitsandbytes
        /// compressed-tensors `pack-quantized`, per-channel W8A16.
        case compressedTensors = "compressed-tensors"
    }

    public struct Options: Sendable {
        public var type: QuantType
        /// bitsandbytes 4-bit block size (32...4096, power of two).
        public var blockSize = 64
        /// bitsandbytes double quantization of the 4-bit absmax.
        public var doubleQuant = false
        /// compressed-tensors int4 group size.
        public var groupSize = 128
        /// compressed-tensors asymmetric (zero point) quantization.
        public var asymmetric = false
        public var int8Format = Int8Format.bitsandbytes
        public var selection = TensorSelection()
        /// `--type-for GLOB=TYPE` rules; the last matching rule wins, for any tensor.
        public var typeFor: [(glob: String, type: QuantType)] = []
        /// Quantize tensors holding NaN or Inf instead of failing.
        public var allowNonfinite = false
        /// llama-quantize's file type when `--type` names one of its presets (`Quantize.parseType`).
        public var fileType: LlamaFileType?
        /// Whose rules choose the types of a GGUF output.
        public var rules = TypeRules.automatic
        /// llama-quantize `--pure`: no per-tensor mixture, every quantizable tensor gets the main type.
        public var pure = false
        /// llama-quantize `--output-tensor-type`.
        public var outputTensorType: GGMLType?
        /// llama-quantize `--token-embedding-type`.
        public var tokenEmbeddingType: GGMLType?
        /// llama-quantize `--leave-output-tensor`.
        public var leaveOutputTensor = false
        /// llama-quantize `--tensor-type PATTERN=TYPE` (regular expressions; the first found wins).
        public var tensorTypes: [(pattern: String, type: GGMLType)] = []
        /// llama-quantize `--imatrix` (already narrowed by `--include-weights`/`--exclude-weights`).
        public var importance: ImportanceMatrix?
        /// The `--imatrix` path as given (recorded in `quantize.imatrix.file`).
        public var importancePath: String?
        /// Quantize tensors that are already quantized (dequantizing them first).
        public var allowRequantize = false

        public init(type: QuantType) { self.type = type }
    }

    /// The layout family of the main type.
    public static func family(_ options: Options) -> QuantType.Family {
        switch options.type {
        case .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .iq4_nl, .iq4_xs: return .gguf
        case .f32, .f16, .bf16: return .plain
        case .nf4, .fp4: return .bitsandbytes4
        case .int8: return options.int8Format == .bitsandbytes ? .bitsandbytes8 : .compressedTensors
        case .int4: return .compressedTensors
        }
    }

    /// Plans quantizing `input` for `destination`.
    /// - Throws: `ScalpelError.invalid` when the layout does not fit the destination (GGUF types need a
    ///   `.gguf` output; the safetensors layouts a safetensors file or folder), or a `--type-for` type
    ///   belongs to another layout.
    ///
    /// A folder output gets the input folder's companion files, with config.json's
    /// `quantization_config` set for the bitsandbytes and compressed-tensors layouts. The plan's report
    /// lists every tensor with its type and round-trip error.
    public static func plan(_ input: Checkpoint, for destination: Destination, options: Options) throws -> Plan {
        let family = family(options)
        let toGGUF = destination.kind == .gguf
        if family == .gguf && !toGGUF {
            throw ScalpelError.invalid(file: destination.path, tensor: nil, reason: "--type \(options.type.rawValue) writes GGUF: the output must end in .gguf")
        }
        if (family != .gguf && family != .plain) && toGGUF {
            throw ScalpelError.invalid(file: destination.path, tensor: nil, reason: "--type \(options.type.rawValue) writes a \(family.rawValue) safetensors layout: the output must be .safetensors or a folder")
        }
        for rule in options.typeFor {
            let f = Quantize.family(Options(type: rule.type, int8Format: options.int8Format))
            guard f == family || f == .plain || (f == .gguf && toGGUF) else {
                throw ScalpelError.invalid(file: destination.path, tensor: nil, reason: "--type-for \(rule.glob)=\(rule.type.rawValue) mixes the \(f.rawValue) layout into a \(family.rawValue) output")
            }
        }
        let layoutName = family == .plain ? (toGGUF ? "gguf" : "safetensors") : family.rawValue
        // A preset is named as given (Q4_K_M), not by its default tensor type (q4_k).
        let preset = options.fileType.map(\.name).flatMap { $0.lowercased() == options.type.rawValue.lowercased() ? nil : $0 }
        var report = QuantizeReport(type: preset ?? options.type.rawValue, layout: layoutName)
        var outputs: [OutputTensor] = []
        let cache = SideCache(budgetBytes: 256 << 20)
        let targets = try targets(input, toGGUF: toGGUF, options: options)
        for (i, logical) in targets.logicals.enumerated() {
            let source = SourceTensor(checkpoint: input, logical: logical, allowNonfinite: options.allowNonfinite)
            outputs += try QuantizedOutputs.make(source, target: targets.types[i], options: options, toGGUF: toGGUF, report: &report, cache: cache,
                                                 importance: targets.importance[i], keepAsStored: targets.keepAsStored)
        }
        let metadata = outputMetadata(input, outputs: outputs, options: options, toGGUF: toGGUF, llamaFileType: targets.llamaFileType)
        let quantizationConfig = QuantizationConfig.json(family: family, options: options, report: report)
        let companions = destination.isFolder
            ? try ModelFolder(checkpointPath: input.path).extras(quantizationConfig: quantizationConfig) : []
        var plan = Plan(destination: destination, tensors: outputs, metadata: metadata, ggufAlignment: input.alignment ?? 32,
                        companions: companions, inputs: input.sourcePaths)
        plan.warnings = selectionWarnings(input, options: options)
        if quantizationConfig != nil && !destination.isFolder {
            plan.warnings.append("a single file carries no config.json: write to a folder to get quantization_config for transformers")
        }
        let planned = report
        plan.report = { result in
            let done = planned.completed(with: result.outcomes)
            guard case .object(let fields) = done.json else { return Report(text: done.text(), details: done) }
            return Report(text: done.text(), fields: fields, details: done)
        }
        return plan
    }

    /// What `quantize` does with each tensor, decided from the header alone (no tensor data is read):
    /// `plan` and `SizeEstimate` both start from it, so an estimate follows the same rules as the run.
    struct Targets {
        /// The input's logical tensors, in file order.
        var logicals: [LogicalTensor]
        /// Per logical tensor, the type it is quantized to (nil: kept; see `QuantizeDecision.decide`).
        var types: [QuantType?]
        /// Per logical tensor, the importance values to quantize it with (`--imatrix`).
        var importance: [[Float]?]
        /// The file type written when llama.cpp's rules chose the types (`usesLlamaRules`).
        var llamaFileType: LlamaFileType?
        /// Kept tensors stay in their stored type (llama.cpp's rules on a GGUF input).
        var keepAsStored: Bool
    }

    /// The target of every tensor of `input` for a GGUF (`toGGUF`) or safetensors output: llama.cpp's
    /// rules (`llamaTargets`) when they apply, else `targetType` (`--type-for`, then the selection).
    /// - Throws: `ScalpelError.invalid` when a quantized tensor would be quantized again without
    ///   `allowRequantize`, or llama.cpp's rules refuse (see `llamaTargets`).
    static func targets(_ input: Checkpoint, toGGUF: Bool, options: Options) throws -> Targets {
        let logicals = try LogicalTensors.resolve(input)
        if usesLlamaRules(input, toGGUF: toGGUF, options: options) {
            let llama = try llamaTargets(input, logicals, options: options)
            return Targets(logicals: logicals, types: llama.types, importance: llama.importance, llamaFileType: llama.fileType,
                           keepAsStored: input.format == .gguf)
        }
        let types: [QuantType?] = try logicals.map { logical in
            let target = targetType(for: SourceTensor(checkpoint: input, logical: logical, allowNonfinite: false).info, options: options)
            try checkRequantize(input, logical, target: target, options: options)
            return target
        }
        return Targets(logicals: logicals, types: types, importance: Array(repeating: nil, count: logicals.count), llamaFileType: nil,
                       keepAsStored: false)
    }

    /// The output's metadata: the input's (see `Convert.metadata`), plus for GGUF `general.file_type` of
    /// the main type and `general.quantization_version` when any tensor is block-quantized.
    static func outputMetadata(_ input: Checkpoint, outputs: [OutputTensor], options: Options, toGGUF: Bool,
                               llamaFileType: LlamaFileType? = nil) -> Metadata {
        var metadata = Convert.metadata(input, toGGUF: toGGUF, outputs: outputs, options: .init())
        if let llamaFileType {
            return llamaMetadata(metadata, fileType: llamaFileType, options: options)
        }
        if toGGUF {
            if let ft = options.type.ggufFileType { metadata["general.file_type"] = .uint32(ft) }
            if outputs.contains(where: { if case .block = $0.type { return true }; return false }) {
                metadata["general.quantization_version"] = .uint32(2)
            }
        }
        return metadata
    }

    /// Warnings for `--type-for`, `--only` and `--skip` globs that match no tensor.
    static func selectionWarnings(_ input: Checkpoint, options: Options) -> [String] {
        let names = input.tensors.map(\.name)
        return unmatchedGlobWarnings(flag: "--type-for", options.typeFor.map(\.glob), names: names, file: input.path)
            + options.selection.warnings(names: names, file: input.path)
    }

    /// The type a tensor is quantized to, or nil to keep it: the last matching `--type-for` rule, else
    /// `--type` for selected tensors.
    static func targetType(for t: TensorInfo, options: Options) -> QuantType? {
        if let rule = options.typeFor.last(where: { globMatches($0.glob, t.name) }) { return rule.type }
        return options.selection.selects(t) ? options.type : nil
    }
}

extension Quantize.Options {
    init(type: QuantType, int8Format: Quantize.Int8Format) {
        self.init(type: type)
        self.int8Format = int8Format
    }
}

/// One input tensor (a logical tensor: a quantized weight may span several file tensors) and how to
/// get its values as f32.
struct SourceTensor: Sendable {
    let checkpoint: Checkpoint
    let logical: LogicalTensor
    let allowNonfinite: Bool

    /// The description used for selection and reports (type: the file type of a one-part tensor).
    var info: TensorInfo {
        let type = logical.fileIndex.map { checkpoint.tensors[$0].type } ?? .plain(.u8)
        return TensorInfo(name: logical.name, type: type, shape: logical.shape, byteCount: logical.storedBytes)
    }

    /// The ggml block type of a one-part block-quantized tensor.
    var blockType: GGMLType? {
        if let i = logical.fileIndex, case .block(let g) = checkpoint.tensors[i].type { return g }
        return nil
    }

    /// True when the values can be computed on (floats, ggml blocks, quantized layouts).
    var isNumeric: Bool {
        logical.isQuantized || (logical.fileIndex.flatMap { checkpoint.tensors[$0].type.dtype }?.isComputableFloat ?? false)
    }

    /// The dtype quantized layouts record as the model's compute dtype (BF16/F16/F32; F32 otherwise).
    var floatDType: DType {
        if let d = logical.originalDType, d == .f16 || d == .bf16 || d == .f32 { return d }
        return .f32
    }

    /// The values as f32 (a copy).
    /// - Throws: when a value is NaN or infinite (unless allowed), naming the tensor.
    func values() throws -> [Float] {
        try withValues { Array($0) }
    }

    /// Calls `body` with the values as f32: straight from the mapped file for an aligned F32 tensor (no
    /// copy), else from a decoded array. Checks for NaN and Inf first when `checkFinite` (and not allowed).
    func withValues<R>(checkFinite: Bool = true, _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        if let i = logical.fileIndex, checkpoint.tensors[i].type == .plain(.f32) {
            let bytes = try checkpoint.view(at: i).bytes
            if Int(bitPattern: bytes.baseAddress) % MemoryLayout<Float>.alignment == 0 {
                let floats = bytes.bindMemory(to: Float.self)
                if checkFinite { try self.checkFinite(floats) }
                return try body(floats)
            }
        }
        let v = try logical.decode()
        return try v.withUnsafeBufferPointer { p in
            if checkFinite { try self.checkFinite(p) }
            return try body(p)
        }
    }

    /// Throws, naming the tensor and counting them, when `v` holds NaN or infinite values (unless allowed).
    func checkFinite(_ v: UnsafeBufferPointer<Float>) throws {
        guard !allowNonfinite else { return }
        let bad = NonFinite.count(v)
        if bad > 0 {
            throw ScalpelError.invalid(file: checkpoint.path, tensor: logical.name,
                                       reason: "has \(bad) NaN or infinite values (--allow-nonfinite quantizes it anyway)")
        }
    }

    /// The file tensors as they are (for tensors that are kept).
    func copies() throws -> [OutputTensor] {
        try logical.parts.map { part in OutputTensor(copying: try checkpoint.view(part), onWritten: { checkpoint.release(part) }) }
    }

    /// Lets the kernel drop the input's pages.
    func release() { for p in logical.parts { checkpoint.release(p) } }
}

/// Counting non-finite values quickly.
enum NonFinite {
    /// Number of NaN and ±Inf values.
    static func count(_ x: UnsafeBufferPointer<Float>) -> Int {
        let raw = UnsafeRawBufferPointer(x)
        let exponent = SIMD16<UInt32>(repeating: 0x7F80_0000)
        var lanes = SIMD16<UInt32>()
        var i = 0
        while i + 16 <= x.count {
            let v = raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<UInt32>.self)
            lanes &+= SIMD16<UInt32>(repeating: 0).replacing(with: 1, where: (v & exponent) .== exponent)
            i += 16
        }
        var total = Int(lanes.wrappedSum())
        while i < x.count {
            if x[i].bitPattern & 0x7F80_0000 == 0x7F80_0000 { total += 1 }
            i += 1
        }
        return total
    }
}

/// Small per-tensor results computed while planning (scales, quant state), kept until written, plus
/// the large results (codes) while they fit a memory budget, so a tensor is quantized once when it
/// can be and twice (plan, then write) when memory is short.
final class SideCache: Sendable {
    private struct State {
        var large: [String: (value: any Sendable, bytes: Int)] = [:]
        var budget: Int
    }

    private let state: Mutex<State>

    init(budgetBytes: Int) { state = Mutex(State(budget: budgetBytes)) }

    /// Keeps `value` (of about `bytes`) for `key` if the budget allows; returns whether it was kept.
    @discardableResult
    func keep(_ value: any Sendable, bytes: Int, for key: String) -> Bool {
        state.withLock { s in
            guard bytes <= s.budget else { return false }
            s.budget -= bytes
            s.large[key] = (value, bytes)
            return true
        }
    }

    /// Removes and returns the value kept for `key`.
    func take<T: Sendable>(_ key: String, as: T.Type) -> T? {
        state.withLock { s in
            guard let kept = s.large.removeValue(forKey: key) else { return nil }
            s.budget += kept.bytes
            return kept.value as? T
        }
    }
}

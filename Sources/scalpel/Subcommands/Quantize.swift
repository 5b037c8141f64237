import ArgumentParser
import ScalpelKit

extension Scalpel {
    struct Quantize: PlanningCommand {
        static let configuration = CommandConfiguration(
            abstract: "Quantize to GGUF (Q8_0, Q4_0..Q5_1, Q2_K..Q6_K, IQ4_NL, IQ4_XS, llama-quantize's presets), bitsandbytes NF4/FP4/int8, or compressed-tensors int4/int8.",
            discussion: """
            GGUF types write a .gguf file whose blocks are bit-identical to ggml's reference quantizers. \
            nf4, fp4 and int8 write safetensors laid out as bitsandbytes/transformers save 4-bit and 8-bit \
            models; int4 (and int8 with --format compressed-tensors) the compressed-tensors pack-quantized \
            layout that vLLM loads. When IN is a model folder and OUT a folder, the folder's other files \
            are copied and config.json gets the matching quantization_config. Types are case-insensitive.

            --type also takes llama-quantize's presets (Q2_K, Q3_K_S/M/L, IQ4_NL, IQ4_XS, Q4_K_S/M, \
            Q5_K_S/M, Q6_K, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, F16, BF16, F32): each tensor gets the type \
            llama.cpp 0c1e57098 gives it. Those rules also apply to every GGUF input, to K and IQ4 types, \
            and with llama-quantize's flags \
            (--pure, --imatrix, --tensor-type, ...). Otherwise the 2-D *.weight tensors of linear layers \
            are quantized; 1-D tensors, embeddings and the output head are kept (--skip removes more; a \
            --type-for rule applies to any tensor). Every run prints the error of each tensor.

            Examples:
              scalpel quantize model.safetensors model-q8_0.gguf --type q8_0
              scalpel quantize f16.gguf q4km.gguf --type Q4_K_M --imatrix imatrix.gguf
              scalpel quantize m.gguf q4.gguf --type q4_0 --type-for 'blk.*.attn_v.*=q8_0'
              scalpel quantize llama/ q4.gguf --type q4_0 --type-for '*.v_proj.*=q8_0'
              scalpel quantize llama/ llama-nf4/ --type nf4 --double-quant
              scalpel quantize llama/ llama-w4a16/ --type int4 --group-size 128
            """
        )

        @Argument(help: "The input checkpoint (anything inspect reads).")
        var input: String

        @Argument(help: "The output: .gguf for GGUF types, else a .safetensors file or a folder.")
        var output: String

        @Option(help: "A llama-quantize preset (Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, IQ4_NL, IQ4_XS, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, F16, BF16, F32) or a tensor type (q2_k..q6_k, iq4_nl, iq4_xs, nf4, fp4, int8, int4); any case.")
        var type: QuantTypeArgument

        @Option(help: "bitsandbytes 4-bit block size (32 to 4096, a power of two).")
        var blockSize: Int = 64

        @Flag(help: "bitsandbytes double quantization of the 4-bit scales.")
        var doubleQuant = false

        @Option(help: "int4 group size (input features per scale).")
        var groupSize: Int = 128

        @Flag(help: "int4/int8 compressed-tensors: asymmetric with a zero point.")
        var asymmetric = false

        @Option(help: "int8 layout: bitsandbytes (LLM.int8) or compressed-tensors.")
        var format: ScalpelKit.Quantize.Int8Format = .bitsandbytes

        @Option(name: .customLong("type-for"), help: "GLOB=TYPE: quantize matching tensors to TYPE (repeatable, last match wins).")
        var typeFor: [TypeRule] = []

        @Flag(help: "Quantize tensors holding NaN or Inf instead of stopping.")
        var allowNonfinite = false

        @OptionGroup var llama: LlamaQuantizeOptions

        @Option(help: "For folder outputs: shards of at most this size (default 5GB).")
        var shardSize: ByteSize?

        @OptionGroup var selection: SelectionOptions
        @OptionGroup var zstd: OutputOptions
        @OptionGroup var writing: WriteOptions
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard FourBit.blockSizes.contains(blockSize) else {
                throw ValidationError("--block-size must be a power of two from 32 to 4096")
            }
            guard groupSize > 0 else { throw ValidationError("--group-size must be positive") }
            try llama.check()
        }

        func plan() throws -> Plan {
            let ckpt = try HFFolder.looksLikeModelFolder(input) && output.hasSuffix(".gguf") ? HFToGGUF.checkpoint(folder: input) : CheckpointReader.open(input)
            let dest = try Destination(path: output, shardBytes: shardSize?.bytes, zstdLevel: zstd.zstdLevel)
            var options = ScalpelKit.Quantize.Options(type: type.quantType)
            options.fileType = type.fileType
            try llama.apply(to: &options)
            options.blockSize = blockSize
            options.doubleQuant = doubleQuant
            options.groupSize = groupSize
            options.asymmetric = asymmetric
            options.int8Format = format
            options.selection = selection.selection
            options.typeFor = typeFor.map { (glob: $0.glob, type: $0.type) }
            options.allowNonfinite = allowNonfinite
            return try ScalpelKit.Quantize.plan(ckpt, for: dest, options: options)
        }
    }
}

/// A `--type-for GLOB=TYPE` rule (TYPE case-insensitive).
struct TypeRule: ExpressibleByArgument {
    var glob: String
    var type: QuantType

    init?(argument: String) {
        guard let eq = argument.lastIndex(of: "="), eq != argument.startIndex,
              let t = QuantType(argument: String(argument[argument.index(after: eq)...])) else { return nil }
        glob = String(argument[..<eq])
        type = t
    }

    static var defaultValueDescription: String { "GLOB=TYPE" }
}

/// A `--type` value: a llama-quantize preset or a tensor type (`ScalpelKit.Quantize.parseType`).
struct QuantTypeArgument: ExpressibleByArgument {
    let quantType: QuantType
    let fileType: LlamaFileType?

    init?(argument: String) {
        guard let (t, ft) = ScalpelKit.Quantize.parseType(argument) else { return nil }
        quantType = t
        fileType = ft
    }

    static var defaultValueDescription: String { "TYPE" }
}

/// llama-quantize's controls, with its flag names.
struct LlamaQuantizeOptions: ParsableArguments {
    @Flag(help: "llama-quantize --pure: no per-tensor mix; every quantizable tensor gets the main type.")
    var pure = false

    @Option(name: .customLong("output-tensor-type"), help: "llama-quantize: the type of output.weight (a ggml type name).")
    var outputTensorType: String?

    @Option(name: .customLong("token-embedding-type"), help: "llama-quantize: the type of token_embd.weight.")
    var tokenEmbeddingType: String?

    @Flag(help: "llama-quantize: leave output.weight as it is.")
    var leaveOutputTensor = false

    @Option(name: .customLong("tensor-type"), help: "llama-quantize PATTERN=TYPE: tensors whose name contains a match of the regular expression get TYPE (repeatable, first match wins).")
    var tensorType: [String] = []

    @Option(help: "An importance matrix from llama-imatrix (GGUF or legacy .dat).")
    var imatrix: String?

    @Option(name: .customLong("include-weights"), help: "Use the importance matrix only for tensors whose name contains this (repeatable).")
    var includeWeights: [String] = []

    @Option(name: .customLong("exclude-weights"), help: "Do not use the importance matrix for tensors whose name contains this (repeatable).")
    var excludeWeights: [String] = []

    @Flag(help: "Quantize tensors that are already quantized (dequantizing them first).")
    var allowRequantize = false

    @Flag(help: "Use llama.cpp's per-tensor rules for a safetensors input even with a legacy type.")
    var llamaRules = false

    func check() throws {
        for name in [outputTensorType, tokenEmbeddingType].compactMap({ $0 }) where GGMLType(name: name) == nil {
            throw ValidationError("'\(name)' is not a ggml type name (such as q8_0, q6_K, f16)")
        }
        for rule in tensorType where Self.parseTensorType(rule) == nil {
            throw ValidationError("--tensor-type takes PATTERN=TYPE with TYPE a ggml type name, not '\(rule)'")
        }
        if !includeWeights.isEmpty && !excludeWeights.isEmpty {
            throw ValidationError("--include-weights and --exclude-weights cannot be used together")
        }
        if imatrix == nil && !(includeWeights.isEmpty && excludeWeights.isEmpty) {
            throw ValidationError("--include-weights and --exclude-weights need --imatrix")
        }
    }

    static func parseTensorType(_ rule: String) -> (pattern: String, type: GGMLType)? {
        guard let eq = rule.firstIndex(of: "="), eq != rule.startIndex, let t = GGMLType(name: String(rule[rule.index(after: eq)...])) else { return nil }
        return (String(rule[..<eq]), t)
    }

    func apply(to options: inout ScalpelKit.Quantize.Options) throws {
        options.pure = pure
        options.outputTensorType = outputTensorType.flatMap { GGMLType(name: $0) }
        options.tokenEmbeddingType = tokenEmbeddingType.flatMap { GGMLType(name: $0) }
        options.leaveOutputTensor = leaveOutputTensor
        options.tensorTypes = tensorType.compactMap(Self.parseTensorType)
        if let imatrix {
            options.importance = try ImportanceMatrix.read(imatrix).filtered(include: includeWeights, exclude: excludeWeights)
            options.importancePath = imatrix
        }
        options.allowRequantize = allowRequantize
        if llamaRules { options.rules = .llama }
    }
}

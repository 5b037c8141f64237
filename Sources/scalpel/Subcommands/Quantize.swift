import ArgumentParser
import Dispatch
import ScalpelKit

struct Quantize: ScalpelCommand {
    static let configuration = CommandConfiguration(
        abstract: "Quantize to GGUF Q8_0/Q4_0/Q4_1/Q5_0/Q5_1, bitsandbytes NF4/FP4/int8, or compressed-tensors int4/int8.",
        discussion: """
        GGUF types write a .gguf file whose blocks are bit-identical to ggml's reference quantizers. nf4, \
        fp4 and int8 write safetensors laid out as bitsandbytes/transformers save 4-bit and 8-bit models; \
        int4 (and int8 with --format compressed-tensors) the compressed-tensors pack-quantized layout that \
        vLLM loads. When IN is a model folder with config.json and OUT a folder, the folder's other files \
        are copied and config.json gets the matching quantization_config.

        By default the 2-D *.weight tensors of linear layers are quantized; 1-D tensors, embeddings and \
        the output head are kept. Every run prints the error of each tensor (relative RMSE, SQNR).

        Examples:
          scalpel quantize model.safetensors model-q8_0.gguf --type q8_0
          scalpel quantize model.gguf model-q4_0.gguf --type q4_0 --type-for '*.attn_v.*=q8_0'
          scalpel quantize llama/ llama-nf4/ --type nf4 --double-quant
          scalpel quantize llama/ llama-w4a16/ --type int4 --group-size 128 --report q.json
        """
    )

    @Argument(help: "The input checkpoint (anything inspect reads).")
    var input: String

    @Argument(help: "The output: .gguf for GGUF types, else a .safetensors file or a folder.")
    var output: String

    @Option(help: "q8_0, q4_0, q4_1, q5_0, q5_1, f16, bf16, f32, nf4, fp4, int8 or int4.")
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
    var format: Int8FormatArgument = .bitsandbytes

    @Option(name: .customLong("type-for"), help: "GLOB=TYPE: quantize matching tensors to TYPE (repeatable, last match wins).")
    var typeFor: [String] = []

    @Flag(help: "Quantize tensors holding NaN or Inf instead of stopping.")
    var allowNonfinite = false

    @Option(help: "For folder outputs: shards of at most this size (default 5GB).")
    var shardSize: String?

    @OptionGroup var selection: SelectionOptions
    @OptionGroup var reportOptions: ReportOptions
    @OptionGroup var outputOptions: OutputOptions

    func validate() throws {
        guard FourBit.blockSizes.contains(blockSize) else {
            throw ValidationError("--block-size must be a power of two from 32 to 4096")
        }
        guard groupSize > 0 else { throw ValidationError("--group-size must be positive") }
        for rule in typeFor where parseRule(rule) == nil {
            throw ValidationError("--type-for takes GLOB=TYPE with TYPE one of \(QuantType.allCases.map(\.rawValue).joined(separator: ", ")), not '\(rule)'")
        }
        if let shardSize, parseByteSize(shardSize) == nil { throw ValidationError("--shard-size must be a size such as 2GB") }
    }

    private func parseRule(_ rule: String) -> (String, QuantType)? {
        guard let eq = rule.lastIndex(of: "="), let t = QuantType(rawValue: String(rule[rule.index(after: eq)...]).lowercased()) else { return nil }
        return (String(rule[..<eq]), t)
    }

    func execute() throws {
        let start = DispatchTime.now()
        let ckpt = try CheckpointReader.open(input)
        let dest = try Destination(path: output, shardBytes: shardSize.flatMap(parseByteSize), zstdLevel: outputOptions.zstdLevel)
        try dest.checkNotOverwriting([input])
        try reportOptions.check(against: [input, output])
        var options = ScalpelKit.Quantize.Options(type: type.quantType)
        options.blockSize = blockSize
        options.doubleQuant = doubleQuant
        options.groupSize = groupSize
        options.asymmetric = asymmetric
        options.int8Format = format.format
        options.selection = selection.selection
        options.typeFor = typeFor.compactMap(parseRule).map { (glob: $0.0, type: $0.1) }
        options.allowNonfinite = allowNonfinite
        let plan = try ScalpelKit.Quantize.plan(ckpt, for: dest, options: options)
        let extras = dest.isFolder ? try ModelFolder(checkpointPath: input).extras(quantizationConfig: plan.quantizationConfig) : []
        try dest.write(plan.tensors, metadata: plan.metadata, ggufAlignment: ckpt.alignment ?? 32, extras: extras)
        var text = plan.report.text()
        text += "\nwrote \(output) in " + Format.fixed(seconds(since: start), 2) + " s"
        if plan.quantizationConfig != nil && !dest.isFolder {
            text += "\n(a single file carries no config.json: write to a folder to get quantization_config for transformers)"
        }
        try reportOptions.emit(text: text, json: plan.report.json)
    }
}

enum QuantTypeArgument: String, ExpressibleByArgument, CaseIterable {
    case q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, f32, f16, bf16, nf4, fp4, int8, int4
    var quantType: QuantType { QuantType(rawValue: rawValue)! }
}

enum Int8FormatArgument: String, ExpressibleByArgument, CaseIterable {
    case bitsandbytes
    case compressedTensors = "compressed-tensors"
    var format: ScalpelKit.Quantize.Int8Format { ScalpelKit.Quantize.Int8Format(rawValue: rawValue)! }
}

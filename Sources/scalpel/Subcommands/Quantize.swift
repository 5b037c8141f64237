import ArgumentParser
import ScalpelKit

extension Scalpel {
    struct Quantize: PlanningCommand {
        static let configuration = CommandConfiguration(
            abstract: "Quantize to GGUF Q8_0/Q4_0/Q4_1/Q5_0/Q5_1, bitsandbytes NF4/FP4/int8, or compressed-tensors int4/int8.",
            discussion: """
            GGUF types write a .gguf file whose blocks are bit-identical to ggml's reference quantizers. \
            nf4, fp4 and int8 write safetensors laid out as bitsandbytes/transformers save 4-bit and 8-bit \
            models; int4 (and int8 with --format compressed-tensors) the compressed-tensors pack-quantized \
            layout that vLLM loads. When IN is a model folder and OUT a folder, the folder's other files \
            are copied and config.json gets the matching quantization_config. Types are case-insensitive.

            By default the 2-D *.weight tensors of linear layers are quantized; 1-D tensors, embeddings \
            and the output head are kept (--skip removes more; a --type-for rule applies to any tensor). \
            Every run prints the error of each tensor (relative RMSE, SQNR).

            Examples:
              scalpel quantize model.safetensors model-q8_0.gguf --type q8_0
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

        @Option(help: "q8_0, q4_0, q4_1, q5_0, q5_1, f16, bf16, f32, nf4, fp4, int8 or int4 (any case).")
        var type: QuantType

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
        }

        func plan() throws -> Plan {
            let ckpt = try HFFolder.looksLikeModelFolder(input) && output.hasSuffix(".gguf") ? HFToGGUF.checkpoint(folder: input) : CheckpointReader.open(input)
            let dest = try Destination(path: output, shardBytes: shardSize?.bytes, zstdLevel: zstd.zstdLevel)
            var options = ScalpelKit.Quantize.Options(type: type)
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

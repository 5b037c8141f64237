import ArgumentParser
import ScalpelKit

extension Scalpel {
    struct Dequantize: PlanningCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn quantized tensors back into plain floats (safetensors or GGUF).",
            discussion: """
            Reads GGUF Q8_0/Q4_0/Q4_1/Q5_0/Q5_1, Q2_K..Q6_K, IQ4_NL and IQ4_XS, bitsandbytes NF4/FP4 and LLM.int8, \
            and compressed-tensors int4/int8 safetensors. Quantized tensors become --dtype, or the float \
            dtype their layout recorded (F32 for GGUF blocks). A folder output gets the input folder's \
            other files, with quantization_config removed from config.json.

            Examples:
              scalpel dequantize model-q4_0.gguf model-f16.safetensors --dtype f16
              scalpel dequantize llama-nf4/ llama-bf16/
            """
        )

        @Argument(help: "The quantized checkpoint.")
        var input: String

        @Argument(help: "The output: .safetensors, .gguf (either + .zst) or a folder.")
        var output: String

        @Option(help: "Write dequantized (and all float) tensors as f32, f16 or bf16.")
        var dtype: DType?

        @OptionGroup var zstd: OutputOptions
        @OptionGroup var writing: WriteOptions
        @OptionGroup var global: GlobalOptions

        func plan() throws -> Plan {
            let ckpt = try CheckpointReader.open(input)
            let dest = try Destination(path: output, zstdLevel: zstd.zstdLevel)
            return try ScalpelKit.Dequantize.plan(ckpt, for: dest, dtype: dtype)
        }
    }
}

import ArgumentParser
import Dispatch
import ScalpelKit

struct Convert: ScalpelCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert between safetensors, sharded safetensors and GGUF, cast dtypes, compress with zstd.",
        discussion: """
        The output format follows OUT: *.safetensors, *.gguf (either + .zst), or a folder of shards \
        (with --shard-size, or any other name). Casts round to nearest even and keep NaN. Block-quantized \
        GGUF tensors are dequantized when the output cannot hold them.

        Examples:
          scalpel convert model.safetensors model.gguf --arch llama
          scalpel convert model.safetensors model-f16.safetensors --dtype f16
          scalpel convert model.safetensors shards/ --shard-size 2GB
          scalpel convert shards/ model.safetensors.zst --zstd-level 9
        """
    )

    @Argument(help: "The input checkpoint.")
    var input: String

    @Argument(help: "The output path.")
    var output: String

    @Option(help: "Cast float tensors to f32, f16 or bf16.")
    var dtype: FloatDTypeArgument?

    @Option(help: "Write shards of at most this size (e.g. 2GB, 500MB) into the OUT folder.")
    var shardSize: String?

    @Option(help: "general.architecture for GGUF output (default: the input's, else 'unknown').")
    var arch: String?

    @Option(help: "general.name for GGUF output (default: the input's, else its file name).")
    var name: String?

    @OptionGroup var outputOptions: OutputOptions

    func validate() throws {
        if let shardSize, parseByteSize(shardSize) == nil {
            throw ValidationError("--shard-size must be a size such as 2GB, 500MB or 1GiB")
        }
    }

    func execute() throws {
        let start = DispatchTime.now()
        let ckpt = try CheckpointReader.open(input)
        let dest = try Destination(path: output, shardBytes: shardSize.flatMap(parseByteSize), zstdLevel: outputOptions.zstdLevel)
        try dest.checkNotOverwriting([input])
        let plan = try ScalpelKit.Convert.plan(ckpt, for: dest, options: .init(dtype: dtype?.dtype, architecture: arch, name: name))
        try dest.write(plan.tensors, metadata: plan.metadata, ggufAlignment: ckpt.alignment ?? 32)
        let s = plan.summary
        let t = seconds(since: start)
        var line = "wrote \(output): \(s.tensors) tensors, \(Format.bytes(s.bytesWritten)) of tensor data"
        if s.cast > 0 { line += ", \(s.cast) cast to \(dtype!.rawValue)" }
        if s.dequantized > 0 { line += ", \(s.dequantized) dequantized" }
        line += String(format: " in %.2f s (%.2f GB/s read)", t, Double(s.bytesRead) / t / 1e9)
        say(line)
    }
}

/// The float dtypes a command can write.
enum FloatDTypeArgument: String, ExpressibleByArgument, CaseIterable {
    case f32, f16, bf16
    var dtype: DType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        }
    }
}

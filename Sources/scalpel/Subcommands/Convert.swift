import ArgumentParser
import ScalpelKit

extension Scalpel {
    struct Convert: PlanningCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert between safetensors, sharded safetensors and GGUF, cast dtypes, compress with zstd.",
            discussion: """
            The output format follows OUT: *.safetensors, *.gguf (either + .zst), or a folder of shards \
            (a name without an extension, or with --shard-size). Casts round to nearest even and keep NaN. \
            Block-quantized GGUF tensors are dequantized when the output cannot hold them. A folder output \
            gets the input folder's config and tokenizer files.

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
        var dtype: DType?

        @Option(help: "Write shards of at most this size (e.g. 2GB, 500MB) into the OUT folder.")
        var shardSize: ByteSize?

        @Option(help: "general.architecture for GGUF output (default: the input's, else 'unknown').")
        var arch: String?

        @Option(help: "general.name for GGUF output (default: the input's, else its file name).")
        var name: String?

        @OptionGroup var zstd: OutputOptions
        @OptionGroup var writing: WriteOptions
        @OptionGroup var global: GlobalOptions

        func plan() throws -> Plan {
            let ckpt = try CheckpointReader.open(input)
            let dest = try Destination(path: output, shardBytes: shardSize?.bytes, zstdLevel: zstd.zstdLevel)
            return try ScalpelKit.Convert.plan(ckpt, for: dest, options: .init(dtype: dtype, architecture: arch, name: name))
        }
    }
}

/// A size such as 2GB, 500MB or 1GiB (`--shard-size`).
struct ByteSize: ExpressibleByArgument {
    var bytes: Int

    init?(argument: String) {
        guard let n = parseByteSize(argument) else { return nil }
        bytes = n
    }

    static var defaultCompletionKind: CompletionKind { .default }
}

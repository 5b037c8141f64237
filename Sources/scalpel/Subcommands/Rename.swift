import ArgumentParser
import ScalpelKit

extension Scalpel {
    struct Rename: ScalpelCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rename tensors by a JSON map or a regular expression.",
            discussion: """
            --map FILE.json holds one object of old name -> new name (every key must be a tensor of IN); \
            --regex FROM=TO replaces every match of FROM in each name by TO ($1, $2... for groups). Two \
            tensors ending with the same name are refused. Tensor data is copied unchanged; OUT's format \
            follows its name as in convert. --dry-run prints the mapping and the plan and writes nothing.

            Examples:
              scalpel rename model.safetensors out.safetensors --regex '^model\\.=' --dry-run
              scalpel rename model.safetensors out.safetensors --regex 'layers\\.([0-9]+)\\.=blocks.$1.'
              scalpel rename model.gguf out.gguf --map names.json
            """
        )

        @Argument(help: "The input checkpoint.")
        var input: String

        @Argument(help: "The output checkpoint.")
        var output: String

        @Option(help: "A JSON object of old name -> new name.")
        var map: String?

        @Option(help: "FROM=TO: a regular expression and its replacement.")
        var regex: String?

        @OptionGroup var zstd: OutputOptions
        @OptionGroup var writing: WriteOptions
        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard (map == nil) != (regex == nil) else { throw ValidationError("give exactly one of --map FILE.json or --regex FROM=TO") }
            if let regex, MetadataEdit.split(regex) == nil { throw ValidationError("--regex takes FROM=TO, not '\(regex)'") }
        }

        func execute() throws {
            let ckpt = try CheckpointReader.open(input)
            let rule = try map.map(ScalpelKit.Rename.loadMap)
                ?? regex.flatMap(MetadataEdit.split).map { ScalpelKit.Rename.Rule.regex(pattern: $0.0, template: $0.1) }!
            let plan = try ScalpelKit.Rename.plan(ckpt, for: try Destination(path: output, zstdLevel: zstd.zstdLevel), rule: rule)
            if writing.dryRun && !writing.json {
                let old = ckpt.tensors.map(\.name), new = plan.tensors.map(\.name)
                print(ScalpelKit.Rename.mappingText(zip(old, new).filter { $0 != $1 }, total: old.count, verb: "would rename"))
            }
            try writing.carryOut(plan, command: Self._commandName, global: global)
        }
    }
}

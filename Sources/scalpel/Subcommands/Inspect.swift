import ArgumentParser
import ScalpelKit

extension Scalpel {
    struct Inspect: ScalpelCommand {
        static let configuration = CommandConfiguration(
            abstract: "Report tensors, parameters, sizes and metadata of a checkpoint.",
            discussion: """
            PATH is a .safetensors file, a folder of shards or its model.safetensors.index.json, a .gguf file, \
            a PEFT adapter folder, or any of these files compressed as .zst. Only the header is read unless \
            --stats is given.

            Examples:
              scalpel inspect model.safetensors
              scalpel inspect model.gguf --group-by layer
              scalpel inspect model.safetensors --tensors --filter '*.q_proj.*' --stats
              scalpel inspect adapter/ --json
              scalpel inspect model.safetensors --estimate q4_0
              scalpel inspect model-f16.gguf --estimate Q4_K_M
            """
        )

        @Argument(help: "The checkpoint to inspect.")
        var path: String

        @Option(help: "Group the second table by dtype, layer or module.")
        var groupBy: Grouping = .module

        @Flag(help: "List every tensor (name, dtype, shape, bytes, offset).")
        var tensors = false

        @Option(help: "Only list tensors whose name matches this glob (implies --tensors).")
        var filter: String?

        @Flag(help: "Print the metadata.")
        var metadata = false

        @Flag(help: "Read the data and add per-tensor min, max, mean, std, mean |x|, zero fraction, NaN and Inf counts.")
        var stats = false

        @Flag(help: "Print one JSON object instead of tables.")
        var json = false

        @Option(help: "TYPE (any quantize --type: a tensor type or a llama-quantize preset such as Q4_K_M; or all): the file size and bits per weight after quantize --type TYPE with the default selection, from the header.")
        var estimate: String?

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            if let estimate, estimate != "all", SizeEstimate.options(forType: estimate) == nil {
                throw ValidationError("--estimate takes one of \(SizeEstimate.typeNames.joined(separator: ", ")) or all")
            }
        }

        func execute() throws {
            let ckpt = try CheckpointReader.open(path, headerOnly: !stats)
            let report = try InspectReport(ckpt, grouping: groupBy, filter: filter, stats: stats)
            let types = estimate.map { $0 == "all" ? SizeEstimate.typeNames : [$0] } ?? []
            let estimates = try SizeEstimate.estimates(ckpt, types: types)
            if json {
                print(JSONWriter.string(report.json.adding(estimates: estimates, single: estimate != "all"), style: .pretty))
            } else {
                print(report.text(listTensors: tensors || filter != nil, showMetadata: metadata)
                      + (estimates.isEmpty ? "" : "\n\n" + SizeEstimate.text(estimates, currentBytes: ckpt.fileBytes)))
            }
        }
    }
}

import ArgumentParser

@main
struct Scalpel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scalpel",
        abstract: "Surgery on model checkpoints: inspect, convert, quantize, prune, extract and merge LoRAs.",
        version: "0.1.0",
        subcommands: [Inspect.self, Convert.self, Quantize.self, Dequantize.self, ExtractLoRACommand.self, Merge.self, Stack.self]
    )
}

import ArgumentParser
import Foundation

/// The `scalpel` command: one subcommand per file in Subcommands/, each nested in this type.
///
/// Exit status: 0 success, 1 bad input or a failed run (one line `scalpel: error: ...`), 64 usage errors
/// (unknown command or option, bad value), 130 and 143 when interrupted by SIGINT or SIGTERM.
@main
struct Scalpel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scalpel",
        abstract: "Surgery on model checkpoints: inspect, convert, quantize, prune, extract and merge LoRAs.",
        version: "0.2.0",
        subcommands: [Inspect.self, Convert.self, Quantize.self, Dequantize.self, Prune.self, ExtractLoRA.self, Merge.self, Stack.self,
                      ConvertAdapter.self, Resize.self, Diff.self, Meta.self, Rename.self]
    )

    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let problem = Suggestions.check(arguments, root: Scalpel.self) {
            Terminal.write("Error: \(problem)\nSee 'scalpel --help' or 'scalpel COMMAND --help'.\n")
            Foundation.exit(ExitCode.validationFailure.rawValue)
        }
        main(arguments)
    }
}

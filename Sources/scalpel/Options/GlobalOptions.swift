import ArgumentParser
import ScalpelKit

/// Flags every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Threads for parallel work (default: all cores). Outputs are byte-identical for any N.")
    var threads: Int?

    @Flag(name: .shortAndLong, help: "Print nothing but errors (and --json output).")
    var quiet = false

    @Flag(name: .shortAndLong, help: "Print a line per tensor as it is written.")
    var verbose = false

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if quiet && verbose { throw ValidationError("--quiet and --verbose cannot be combined") }
    }

    /// Applies the process-wide settings (threads) before the command runs.
    func apply() {
        if let threads { Parallelism.setThreads(threads) }
    }

    /// Prints a warning on standard error unless `--quiet`.
    func warn(_ text: String) {
        if !quiet { Terminal.warning(text) }
    }
}

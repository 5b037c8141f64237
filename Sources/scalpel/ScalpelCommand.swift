import ArgumentParser
import Foundation
import ScalpelKit

/// A subcommand whose failures print as one line `scalpel: error: FILE: TENSOR: what is wrong` and
/// exit with status 1. Each command implements `execute()`.
protocol ScalpelCommand: ParsableCommand {
    func execute() throws
}

extension ScalpelCommand {
    func run() throws {
        do {
            try execute()
        } catch let e as ScalpelError {
            FileHandle.standardError.write(Data("scalpel: error: \(e.description)\n".utf8))
            throw ExitCode(1)
        } catch let e as ExitCode {
            throw e
        } catch let e as ValidationError {
            throw e
        }
    }
}

/// Options shared by every command that writes a checkpoint.
struct OutputOptions: ParsableArguments {
    @Option(help: "zstd level (1-19) when the output path ends in .zst.")
    var zstdLevel: Int = 3

    func validate() throws {
        guard (1...19).contains(zstdLevel) else { throw ValidationError("--zstd-level must be between 1 and 19") }
    }
}

/// Prints a line to standard output.
func say(_ text: String) {
    print(text)
}

/// Seconds since an instant, for summaries.
func seconds(since start: DispatchTime) -> Double {
    Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
}

import ArgumentParser
import Foundation
import ScalpelKit

/// A subcommand whose failures print as one line `scalpel: error: FILE: TENSOR: what is wrong` and
/// exit with status 1. Each command implements `execute()`; `run()` applies the shared options first.
protocol ScalpelCommand: ParsableCommand {
    var global: GlobalOptions { get }
    func execute() throws
}

extension ScalpelCommand {
    func run() throws {
        global.apply()
        Temporaries.installSignalHandlers()
        do {
            try execute()
        } catch let e as ScalpelError {
            Terminal.error(OpenedInputs.attribute(e).description)
            throw ExitCode(1)
        }
    }
}

/// A command that writes a checkpoint: it opens its inputs and builds a `Plan`; everything after that
/// (dry run, writing with progress, the report as text or JSON) is shared.
protocol PlanningCommand: ScalpelCommand {
    /// The output path as the user gave it.
    var output: String { get }
    var writing: WriteOptions { get }
    /// Opens the inputs and plans the output.
    func plan() throws -> Plan
}

extension PlanningCommand {
    func execute() throws {
        // Refused before planning, which may take long (extract-lora's SVDs); Pipeline checks again.
        if !writing.force && !writing.dryRun && FileManager.default.fileExists(atPath: output) {
            throw ScalpelError.invalid(file: output, tensor: nil, reason: "output already exists (--force replaces it, but never overwrites an input)")
        }
        try writing.carryOut(try plan(), command: Self._commandName, global: global)
    }
}

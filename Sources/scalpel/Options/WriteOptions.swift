import ArgumentParser
import Foundation
import ScalpelKit

/// Flags of every command that writes a checkpoint or adapter, and the shared steps after planning.
struct WriteOptions: ParsableArguments {
    @Flag(help: "Print what was done as one JSON object on standard output.")
    var json = false

    @Flag(help: "Print the plan (each tensor: action, type, bytes) and the exact output size; write nothing.")
    var dryRun = false

    @Flag(help: "Replace an existing output file or folder (never an input).")
    var force = false

    @Option(help: "Also write the JSON summary to this file.")
    var report: String?

    /// Dry run or write, then the report: text (with the common "wrote" line) or one JSON object.
    func carryOut(_ plan: Plan, command: String, global: GlobalOptions) throws {
        try checkReportPath(against: plan.inputs + [plan.destination.path])
        for w in plan.warnings { global.warn(w) }
        if dryRun {
            let files = try Pipeline.predict(plan)
            try emit(text: PlanText.render(plan, files: files), json: PlanText.json(plan, files: files, command: command))
            return
        }
        let progress = ProgressDisplay(global: global)
        let result = try Pipeline.write(plan, options: .init(force: force, progress: progress.sink))
        progress.finish()
        let report = plan.report(result)
        let total = result.bytes
        var text = report.text.isEmpty ? "" : report.text + "\n"
        text += "wrote \(plan.destination.path): \(Format.bytes(total))"
            + (result.files.count > 1 ? " in \(result.files.count) files" : "") + " in " + Format.fixed(result.seconds, 2) + " s"
        let common: [(String, JSONValue)] = [
            ("command", .string(command)), ("output", .string(plan.destination.path)), ("dry_run", .bool(false)),
            ("files", .array(result.files.map { .object([("path", .string($0.path)), ("bytes", .int($0.bytes))]) })),
            ("bytes_written", .int(total)), ("tensors_written", .int(result.tensors)), ("seconds", .double(result.seconds)),
            ("warnings", .array(plan.warnings.map { .string($0) })),
        ]
        try emit(text: text, json: .object(common + report.fields), quiet: global.quiet)
    }

    /// Prints text (unless quiet) or JSON, and writes the report file when asked.
    private func emit(text: String, json value: JSONValue, quiet: Bool = false) throws {
        if json {
            print(JSONWriter.string(value, style: .pretty))
        } else if !quiet {
            print(text)
        }
        if let report { try writeTextFile(JSONWriter.string(value, style: .pretty) + "\n", to: report) }
    }

    /// Refuses, before anything is written, a report path that is one of the command's inputs or its
    /// output, or whose folder is missing or not writable.
    private func checkReportPath(against paths: [String]) throws {
        guard let report else { return }
        let folder = PathName.folder(report)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue,
              FileManager.default.isWritableFile(atPath: folder) else {
            throw ScalpelError.io(file: report, reason: "cannot write the report: folder \(folder) is missing or not writable")
        }
        for p in paths where canonicalPath(p) == canonicalPath(report) || canonicalPath(report).hasPrefix(canonicalPath(p) + "/") {
            throw ScalpelError.invalid(file: report, tensor: nil, reason: "--report would overwrite \(p)")
        }
    }
}

/// The zstd level of `.zst` outputs.
struct OutputOptions: ParsableArguments {
    @Option(help: "zstd level (1-19) when the output path ends in .zst.")
    var zstdLevel: Int = 3

    func validate() throws {
        guard (1...19).contains(zstdLevel) else { throw ValidationError("--zstd-level must be between 1 and 19") }
    }
}

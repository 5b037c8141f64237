import ArgumentParser
import Foundation
import ScalpelKit

/// Which tensors a transform applies to: shared by quantize and prune.
struct SelectionOptions: ParsableArguments {
    @Option(help: "Only transform tensors matching this glob (repeatable).")
    var only: [String] = []

    @Option(help: "Leave tensors matching this glob out of the default selection (repeatable; an explicit --type-for rule still applies).")
    var skip: [String] = []

    @Flag(help: "Also transform embedding tables.")
    var includeEmbeddings = false

    @Flag(help: "Also transform the output head (lm_head, output.weight).")
    var includeHead = false

    var selection: TensorSelection {
        TensorSelection(includeEmbeddings: includeEmbeddings, includeHead: includeHead, only: only, skip: skip)
    }
}

/// Options of commands that print a summary that can also be JSON or a report file.
struct ReportOptions: ParsableArguments {
    @Flag(help: "Print the summary as one JSON object.")
    var json = false

    @Option(help: "Also write the JSON summary to this file.")
    var report: String?

    /// Prints the summary (text or JSON) and writes the report file when asked.
    func emit(text: String, json value: JSONValue) throws {
        print(json ? JSONWriter.string(value, style: .pretty) : text)
        if let report {
            try writeTextFile(JSONWriter.string(value, style: .pretty) + "\n", to: report)
        }
    }

    /// Refuses, before anything is written, a report path that is one of the command's inputs or
    /// outputs or whose folder is missing or not writable.
    func check(against paths: [String]) throws {
        guard let report else { return }
        let folder = PathName.folder(report)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue,
              FileManager.default.isWritableFile(atPath: folder) else {
            throw ScalpelError.io(file: report, reason: "cannot write the report: folder \(folder) is missing or not writable")
        }
        for p in paths where canonicalPath(p) == canonicalPath(report) {
            throw ScalpelError.invalid(file: report, tensor: nil, reason: "--report would overwrite \(p)")
        }
    }
}

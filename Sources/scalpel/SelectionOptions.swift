import ArgumentParser
import ScalpelKit

/// Which tensors a transform applies to: shared by quantize and prune.
struct SelectionOptions: ParsableArguments {
    @Option(help: "Only transform tensors matching this glob (repeatable).")
    var only: [String] = []

    @Option(help: "Never transform tensors matching this glob (repeatable).")
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

    /// Refuses a report path that is one of the command's inputs or outputs.
    func check(against paths: [String]) throws {
        guard let report else { return }
        for p in paths where canonicalPath(p) == canonicalPath(report) {
            throw ScalpelError.invalid(file: report, tensor: nil, reason: "--report would overwrite \(p)")
        }
    }
}

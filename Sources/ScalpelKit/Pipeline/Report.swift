/// What a command did, for people (text) and scripts (JSON), assembled after writing from the plan's
/// own figures and the `WriteResult`.
public struct Report: Sendable {
    /// Summary lines, without the common "wrote OUT" line the CLI adds.
    public var text: String
    /// The command's own fields of the `--json` object (the CLI adds the common ones: `command`,
    /// `output`, `files`, `bytes_written`, `tensors_written`, `seconds`, `warnings`, `dry_run`).
    public var fields: [(String, JSONValue)]
    /// The command's typed results for library users (`PruneReport`, `QuantizeReport`,
    /// `Merge.Summary`, `Stack.Summary`, `ExtractLoRA.Result`...), nil when there are none.
    public var details: (any Sendable)?

    public init(text: String, fields: [(String, JSONValue)] = [], details: (any Sendable)? = nil) {
        self.text = text
        self.fields = fields
        self.details = details
    }
}

/// Everything a command will write, decided before any tensor data is computed: the one value every
/// command builds (open inputs -> plan -> `Pipeline.write` -> report).
///
/// Building a plan reads headers (and, for a few layouts, computes small side values), so `--dry-run`
/// is printing the plan, and `Pipeline.predict` gives the exact output size from the same layout code
/// the writer uses.
public struct Plan: Sendable {
    /// Where the output goes and in which container.
    public var destination: Destination
    /// The output tensors, in the order the command produced them (containers may reorder them:
    /// safetensors sorts by dtype width and name).
    public var tensors: [OutputTensor]
    /// safetensors `__metadata__` or GGUF key/values.
    public var metadata: Metadata
    /// GGUF tensor data alignment.
    public var ggufAlignment: Int
    /// Files placed next to the weights of a folder output: config.json, tokenizer files,
    /// adapter_config.json, README.md. Ignored for single-file outputs.
    public var companions: [FolderExtra]
    /// The paths the command read: the output must not be, or be inside, any file they resolve to.
    public var inputs: [String]
    /// Things the user should know before the output is used (a rule that matched nothing, a rank
    /// larger than asked...), printed as warnings and listed under `warnings` in `--json`.
    public var warnings: [String] = []
    /// Builds the command's report from what was written.
    public var report: @Sendable (WriteResult) -> Report = { _ in Report(text: "") }

    public init(destination: Destination, tensors: [OutputTensor], metadata: Metadata = Metadata(), ggufAlignment: Int = 32,
                companions: [FolderExtra] = [], inputs: [String]) {
        self.destination = destination
        self.tensors = tensors
        self.metadata = metadata
        self.ggufAlignment = ggufAlignment
        self.companions = companions
        self.inputs = inputs
    }

    /// Bytes of tensor data the plan writes.
    public var tensorBytes: Int { tensors.reduce(0) { $0 + $1.byteCount } }
}

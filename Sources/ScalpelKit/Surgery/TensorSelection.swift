/// Which tensors a transform (quantize, prune) applies to.
///
/// By default: the 2-D `*.weight` tensors of linear layers. 1-D tensors (norms, biases), embeddings
/// (names containing `embed`, `wte`, `wpe`, `token_embd`) and the output head (`lm_head`, `embed_out`,
/// GGUF `output.weight`) are left alone unless included. `only` globs narrow the selection first,
/// `skip` globs remove from it last.
public struct TensorSelection: Sendable {
    public var includeEmbeddings = false
    public var includeHead = false
    /// When non-empty, only tensors matching one of these globs are candidates.
    public var only: [String] = []
    /// Tensors matching one of these globs are never selected.
    public var skip: [String] = []

    public init(includeEmbeddings: Bool = false, includeHead: Bool = false, only: [String] = [], skip: [String] = []) {
        self.includeEmbeddings = includeEmbeddings
        self.includeHead = includeHead
        self.only = only
        self.skip = skip
    }

    /// Why a tensor is not selected, or nil when it is.
    public func exclusionReason(_ t: TensorInfo) -> String? {
        if skip.contains(where: { globMatches($0, t.name) }) { return "skipped by --skip" }
        if !only.isEmpty && !only.contains(where: { globMatches($0, t.name) }) { return "not matched by --only" }
        if t.shape.count != 2 { return t.shape.count < 2 ? "1-D (norm or bias)" : "not 2-D" }
        if !only.isEmpty { return nil }
        guard t.name.hasSuffix(".weight") || t.name.hasSuffix("weight") else { return "not a weight" }
        if TensorSelection.isEmbedding(t.name) && !includeEmbeddings { return "embedding" }
        if TensorSelection.isHead(t.name) && !includeHead { return "output head" }
        return nil
    }

    /// True when the tensor is selected.
    public func selects(_ t: TensorInfo) -> Bool { exclusionReason(t) == nil }

    /// True for embedding tables.
    public static func isEmbedding(_ name: String) -> Bool {
        let n = name.lowercased()
        return n.contains("embed") && !n.contains("embed_out") || n.contains(".wte.") || n.hasPrefix("wte.")
            || n.contains(".wpe.") || n.hasPrefix("wpe.") || n.hasPrefix("token_embd")
    }

    /// True for the output (LM) head.
    public static func isHead(_ name: String) -> Bool {
        let n = name.lowercased()
        return n.hasPrefix("lm_head") || n.contains(".lm_head") || n.contains("embed_out") || n == "output.weight"
    }
}

/// Warnings, one per glob of `globs` that matches none of `names` ("--only 'x.*' matches no tensor of
/// FILE"), so a misspelled rule does not pass silently.
public func unmatchedGlobWarnings(flag: String, _ globs: [String], names: [String], file: String) -> [String] {
    globs.filter { glob in !names.contains { globMatches(glob, $0) } }.map { "\(flag) '\($0)' matches no tensor of \(file)" }
}

extension TensorSelection {
    /// Warnings for `--only` and `--skip` globs that match none of `names`.
    public func warnings(names: [String], file: String) -> [String] {
        unmatchedGlobWarnings(flag: "--only", only, names: names, file: file) + unmatchedGlobWarnings(flag: "--skip", skip, names: names, file: file)
    }
}

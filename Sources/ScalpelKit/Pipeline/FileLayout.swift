/// One output file as a format lays it out: the header bytes, then each tensor's data followed by zero
/// padding. Format writers build it (checking names, types and shapes); `Pipeline` writes it and
/// predicts its size from it, so `--dry-run`'s size is the written size by construction.
struct FileLayout: Sendable {
    var header: [UInt8]
    var items: [(tensor: OutputTensor, padding: Int)]

    /// The file's size.
    var byteCount: Int {
        items.reduce(header.count) { $0 + $1.tensor.byteCount + $1.padding }
    }

    /// Writes the header and every tensor into `out`, computing each tensor while the previous one is
    /// written. Returns what each computed tensor measured.
    func write(into out: OutputFile, written: @escaping @Sendable (OutputTensor) -> Void) throws -> [String: TensorOutcome] {
        try out.write(header)
        let data = TensorDataWriter(out: out, written: written)
        var outcomes: [String: TensorOutcome] = [:]
        for item in items {
            let outcome = try data.write(item.tensor, padding: item.padding)
            if outcome != .none { outcomes[item.tensor.name] = outcome }
        }
        try data.finish()
        return outcomes
    }
}

import ScalpelKit

/// extract-lora's progress while it factors each changed weight (before anything is written): one line
/// redrawn on a terminal, a line per tensor with `--verbose`, nothing with `--quiet`.
final class SVDProgress {
    private let live: Bool
    private let verbose: Bool
    private var decomposed = 0

    init(global: GlobalOptions) {
        live = !global.quiet && Terminal.stderrIsTerminal
        verbose = global.verbose
    }

    /// Called by `ExtractLoRA.plan` after each tensor.
    func log(_ r: ScalpelKit.ExtractLoRA.TensorResult) {
        if r.status == "decomposed" { decomposed += 1 }
        let line = "\(r.status) \(Terminal.escaped(r.name))" + (r.status == "decomposed"
            ? " (rank \(r.rank), relative error \(Format.fixed(r.relativeError, 4)), \(Format.fixed(r.seconds, 2)) s)" : "")
        if verbose {
            Terminal.write((live ? "\r\u{1B}[K" : "") + line + "\n")
        } else if live {
            Terminal.write("\r\u{1B}[K" + "factoring: \(Format.counted(decomposed, "tensor")) decomposed, last \(Terminal.escaped(r.name))")
        }
    }

    deinit {
        if live && !verbose && decomposed > 0 { Terminal.write("\r\u{1B}[K") }
    }
}

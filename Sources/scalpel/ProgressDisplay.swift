import Dispatch
import ScalpelKit
import Synchronization

/// Progress on standard error while a plan is written: one line redrawn in place (tensors done/total,
/// bytes, GB/s, ETA) when standard error is a terminal, ending in a clean final line; a line per tensor
/// with `--verbose` (llama-quantize's `[ i/n] name - [shape], type = X, size = ...`); nothing with
/// `--quiet`, and no redrawn line when standard error is not a terminal.
final class ProgressDisplay: Sendable {
    private let live: Bool
    private let verbose: Bool
    /// The last event and when the line was last drawn (uptime ns).
    private let state = Mutex<(last: ProgressEvent?, drawnAt: UInt64)>((nil, 0))

    init(global: GlobalOptions) {
        live = !global.quiet && Terminal.stderrIsTerminal
        verbose = global.verbose
    }

    /// The pipeline's progress callback, or nil when nothing is shown.
    var sink: (@Sendable (ProgressEvent) -> Void)? {
        guard live || verbose else { return nil }
        return { [self] event in show(event) }
    }

    private func show(_ e: ProgressEvent) {
        let now = DispatchTime.now().uptimeNanoseconds
        let draw = state.withLock { s -> Bool in
            s.last = e
            guard verbose || e.tensorsDone == e.tensorCount || now - s.drawnAt >= 100_000_000 else { return false }
            s.drawnAt = now
            return true
        }
        guard draw else { return }
        if verbose {
            let width = String(e.tensorCount).count
            let index = String(repeating: " ", count: width - String(e.tensorsDone).count) + String(e.tensorsDone)
            Terminal.write((live ? "\r\u{1B}[K" : "") + "[\(index)/\(e.tensorCount)] \(Terminal.escaped(e.tensor)) - \(PlanText.shapeText(e.shape)), "
                + "type = \(e.type), size = \(Format.bytes(e.type.byteCount(elements: e.shape.reduce(1, *)) ?? 0)) (\(e.action))\n")
        }
        if live { Terminal.write("\r\u{1B}[K" + line(e)) }
    }

    /// "[ 52/104] 43.3 MiB / 86.6 MiB  1.23 GB/s  ETA 0:03".
    private func line(_ e: ProgressEvent) -> String {
        let rate = e.seconds > 0 ? Double(e.bytesDone) / e.seconds : 0
        let eta = rate > 0 ? Double(e.byteCount - e.bytesDone) / rate : 0
        let width = String(e.tensorCount).count
        let index = String(repeating: " ", count: width - String(e.tensorsDone).count) + String(e.tensorsDone)
        return "[\(index)/\(e.tensorCount)] \(Format.bytes(e.bytesDone)) / \(Format.bytes(e.byteCount))  "
            + Format.fixed(rate / 1e9, 2) + " GB/s  ETA " + clock(eta)
    }

    private func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded(.up))
        let sec = String(s % 60)
        return "\(s / 60):" + (sec.count == 1 ? "0" + sec : sec)
    }

    /// Ends the redrawn line with a final summary line.
    func finish() {
        guard live, let e = state.withLock({ $0.last }) else { return }
        let rate = e.seconds > 0 ? Double(e.bytesDone) / e.seconds : 0
        Terminal.write("\r\u{1B}[K" + "wrote \(Format.counted(e.tensorsDone, "tensor")), \(Format.bytes(e.bytesDone)) in "
            + Format.fixed(e.seconds, 2) + " s (" + Format.fixed(rate / 1e9, 2) + " GB/s)\n")
    }
}

import Foundation

/// What quantization did to one tensor.
public struct TensorQuantResult: Sendable {
    public var name: String
    public var shape: [Int]
    /// The stored type before ("F32", "Q8_0"...).
    public var from: String
    /// The type written ("Q4_0", "NF4", "F16"... or the input type when kept).
    public var to: String
    public var parameters: Int
    public var bytesBefore: Int
    /// Bytes written for this tensor, including its scales and side tensors.
    public var bytesAfter: Int
    /// Relative RMSE ||x - x̂|| / ||x|| of the round trip, when quantized.
    public var relativeRMSE: Double?
    /// Signal-to-quantization-noise ratio in dB, when quantized.
    public var sqnrDB: Double?
    /// Why the tensor was kept or fell back, or that it was dequantized first.
    public var note: String?

    public var quantized: Bool { relativeRMSE != nil }
}

/// Per-tensor results: recorded while planning, completed with the errors the computations return
/// (`completed(with:)`), and rendered as the summary.
public struct QuantizeReport: Sendable {
    private var results: [String: TensorQuantResult] = [:]
    private var order: [String] = []
    /// For a tensor whose error is measured when it is written: the output whose outcome holds it
    /// (compressed-tensors' `P.weight_packed` for `P.weight`).
    private var measuredBy: [String: String] = [:]
    /// The target type and layout.
    public let type: String
    public let layout: String

    public init(type: String, layout: String) {
        self.type = type
        self.layout = layout
    }

    /// Records (or replaces) a tensor's entry; the first record fixes its place in the order.
    public mutating func record(_ r: TensorQuantResult) {
        if results[r.name] == nil { order.append(r.name) }
        results[r.name] = r
    }

    /// Sets the error figures of a recorded tensor from a measured error. An exact round trip (e.g. an
    /// all-zero tensor) has error 0 and SQNR +inf even where 0/0 would say NaN.
    public mutating func setError(_ name: String, _ e: QuantError) {
        setError(name, relativeRMSE: e.errorEnergy == 0 ? 0 : e.relativeRMSE, sqnrDB: e.errorEnergy == 0 ? .infinity : e.sqnrDB)
    }

    /// Sets the error figures of a recorded tensor.
    public mutating func setError(_ name: String, relativeRMSE: Double, sqnrDB: Double) {
        results[name]?.relativeRMSE = relativeRMSE
        results[name]?.sqnrDB = sqnrDB
    }

    /// Says that `name` is quantized and its error will be measured by the output tensor `output` (by
    /// default the output of the same name measures it).
    public mutating func setMeasured(_ name: String, by output: String) {
        measuredBy[name] = output
    }

    /// Whether a tensor is quantized, before its error is measured too.
    public func isQuantized(_ r: TensorQuantResult) -> Bool {
        r.quantized || measuredBy[r.name] != nil
    }

    /// All entries in input order.
    public var entries: [TensorQuantResult] { order.map { results[$0]! } }

    /// The report with the error of every tensor whose computation measured one.
    public func completed(with outcomes: [String: TensorOutcome]) -> QuantizeReport {
        var r = self
        for name in order { if let e = outcomes[measuredBy[name] ?? name]?.error { r.setError(name, e) } }
        return r
    }

    public var json: JSONValue {
        let e = entries
        let q = e.filter(\.quantized)
        let before = e.reduce(0) { $0 + $1.bytesBefore }, after = e.reduce(0) { $0 + $1.bytesAfter }
        let params = e.reduce(0) { $0 + $1.parameters }
        func opt(_ d: Double?) -> JSONValue { d.map { .double($0) } ?? .null }
        return .object([
            ("type", .string(type)),
            ("layout", .string(layout)),
            ("tensors_quantized", .int(q.count)),
            ("tensors_kept", .int(e.count - q.count)),
            ("bytes_before", .int(before)),
            ("bytes_after", .int(after)),
            ("bits_per_parameter", .double(params > 0 ? Double(after) * 8 / Double(params) : 0)),
            ("tensors", .array(e.map { r in
                .object([
                    ("name", .string(r.name)), ("shape", .array(r.shape.map { .int($0) })),
                    ("from", .string(r.from)), ("to", .string(r.to)), ("parameters", .int(r.parameters)),
                    ("bytes_before", .int(r.bytesBefore)), ("bytes_after", .int(r.bytesAfter)),
                    ("relative_rmse", opt(r.relativeRMSE)), ("sqnr_db", opt(r.sqnrDB)),
                    ("note", r.note.map { .string($0) } ?? .null),
                ])
            })),
        ])
    }

    /// The human summary: totals, then quantized tensors worst first (at most `limit` rows), then notes.
    public func text(limit: Int = 15) -> String {
        let e = entries
        let q = e.filter(\.quantized)
        let before = e.reduce(0) { $0 + $1.bytesBefore }, after = e.reduce(0) { $0 + $1.bytesAfter }
        let params = e.reduce(0) { $0 + $1.parameters }
        // A preset (or --type-for) mixes types: say which, in order of first use.
        var mix: [(type: String, count: Int)] = []
        for r in q {
            if let k = mix.firstIndex(where: { $0.type == r.to }) { mix[k].count += 1 } else { mix.append((r.to, 1)) }
        }
        let detail = mix.count > 1 ? ": " + mix.map { "\($0.count) \($0.type)" }.joined(separator: ", ") : ""
        var lines = [
            "quantized \(Format.counted(q.count, "tensor")) to \(type) (\(layout)\(detail)), kept \(e.count - q.count)",
            "size \(Format.bytes(before)) -> \(Format.bytes(after)) (\(Format.fixed(before > 0 ? Double(after) / Double(before) * 100 : 0, 1))%), "
                + "\(Format.fixed(params > 0 ? Double(after) * 8 / Double(params) : 0, 2)) bits/parameter",
        ]
        if !q.isEmpty {
            // Tensors quantized with --allow-nonfinite have NaN figures: they are listed, not averaged.
            let rms = q.map { $0.relativeRMSE! }.filter(\.isFinite)
            if !rms.isEmpty {
                let mean = rms.reduce(0, +) / Double(rms.count)
                lines.append("relative RMSE: mean \(Format.fixed(mean, 4)), worst \(Format.fixed(rms.max()!, 4))"
                    + (rms.count < q.count ? " (\(q.count - rms.count) tensors with NaN or Inf left out)" : ""))
            }
            var table = TextTable(header: ["tensor", "shape", "to", "rel. RMSE", "SQNR dB"], rightAligned: [3, 4])
            let worst = { (r: TensorQuantResult) in r.relativeRMSE!.isNaN ? Double.infinity : r.relativeRMSE! }
            for r in q.sorted(by: { worst($0) > worst($1) }).prefix(limit) {
                table.add([r.name, "[" + r.shape.map(String.init).joined(separator: ", ") + "]", r.to,
                           Format.fixed(r.relativeRMSE!, 4), Format.fixed(r.sqnrDB!, 1)])
            }
            lines.append("")
            lines.append("worst tensors first" + (q.count > limit ? " (\(limit) of \(q.count); --report for all)" : ""))
            lines.append(table.render())
        }
        let noted = e.filter { $0.note != nil }
        if !noted.isEmpty {
            lines.append("")
            var counts: [String: Int] = [:]
            var firstOrder: [String] = []
            for r in noted {
                if counts[r.note!] == nil { firstOrder.append(r.note!) }
                counts[r.note!, default: 0] += 1
            }
            lines.append("notes")
            for n in firstOrder { lines.append("  \(counts[n]!) tensor\(counts[n]! == 1 ? "" : "s"): \(n)") }
        }
        return lines.joined(separator: "\n")
    }
}

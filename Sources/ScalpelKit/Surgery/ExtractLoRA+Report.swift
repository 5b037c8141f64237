extension ExtractLoRA.Result {
    /// The share of the fine-tune's total difference energy (over every changed float tensor) that the
    /// adapter keeps.
    public var keptShare: Double {
        let total = results.reduce(0) { $0 + $1.deltaEnergy }
        let kept = results.reduce(0) { $0 + $1.deltaEnergy * $1.keptEnergy }
        return total > 0 ? kept / total : 1
    }

    public var json: JSONValue {
        let decomposed = results.filter { $0.status == "decomposed" }
        return .object([
            ("tensors_decomposed", .int(decomposed.count)),
            ("tensors_unchanged", .int(results.filter { $0.status == "unchanged" }.count)),
            ("adapter_parameters", .int(adapterParameters)),
            ("adapter_bytes", .int(adapterBytes)),
            ("kept_share", .double(keptShare)),
            ("tensors", .array(results.filter { $0.status != "unchanged" }.map { r in
                .object([
                    ("name", .string(r.name)), ("shape", .array(r.shape.map { .int($0) })), ("status", .string(r.status)),
                    ("rank", .int(r.rank)), ("kept_energy", .double(r.keptEnergy)), ("relative_error", .double(r.relativeError)),
                    ("relative_change", .double(r.relativeChange)), ("seconds", .double(r.seconds)),
                    ("detail", r.detail.map { .string($0) } ?? .null),
                ])
            })),
        ])
    }

    /// The human summary: decomposed tensors, then what changed but was not decomposed, then totals.
    public var text: String {
        var lines: [String] = []
        let decomposed = results.filter { $0.status == "decomposed" }
        if !decomposed.isEmpty {
            var table = TextTable(header: ["tensor", "shape", "rank", "kept energy", "rel. error", "seconds"], rightAligned: [2, 3, 4, 5])
            for r in decomposed {
                table.add([r.name, "[" + r.shape.map(String.init).joined(separator: ", ") + "]", String(r.rank),
                           Format.fixed(100 * r.keptEnergy, 2) + "%", Format.fixed(r.relativeError, 4), Format.fixed(r.seconds, 2)])
            }
            lines.append(table.render())
        }
        let others = results.filter { !["decomposed", "unchanged"].contains($0.status) }
        if !others.isEmpty {
            lines.append("")
            lines.append("changed but not in the LoRA factors")
            var table = TextTable(header: ["tensor", "status", "relative change", "detail"], rightAligned: [2])
            for r in others {
                table.add([r.name, r.status, r.deltaEnergy > 0 ? Format.fixed(r.relativeChange, 5) : "", r.detail ?? ""])
            }
            lines.append(table.render())
        }
        let unchanged = results.filter { $0.status == "unchanged" }.count
        lines.append("")
        lines.append("\(Format.counted(decomposed.count, "tensor")) decomposed, \(unchanged) unchanged; adapter: \(Format.counted(adapterParameters, "parameter")), "
            + "\(Format.bytes(adapterBytes)); keeps \(Format.fixed(100 * keptShare, 2))% of the fine-tune's difference (Frobenius energy)")
        return lines.joined(separator: "\n")
    }
}

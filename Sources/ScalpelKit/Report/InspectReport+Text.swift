extension InspectReport {
    /// The human-readable report. `listTensors` adds the tensor table, `showMetadata` the metadata.
    public func text(listTensors: Bool, showMetadata: Bool) -> String {
        var out: [String] = []
        let base: [(String, String)] = [
            ("format", format.rawValue + (compressed ? " (zstd-compressed)" : "")),
            ("tensors", Format.grouped(totals.tensors)),
            (quantizedWeights.isEmpty ? "parameters" : "stored elements", "\(Format.grouped(totals.parameters)) (\(Format.count(totals.parameters)))"),
            ("file size", "\(Format.grouped(fileBytes)) bytes (\(Format.bytes(fileBytes)))"),
            ("tensor data", "\(Format.grouped(totals.bytes)) bytes (\(Format.bytes(totals.bytes)))"),
            ("bits/parameter", Format.fixed(bitsPerParameter, 2)),
        ]
        var summary = base
        if !quantizedWeights.isEmpty {
            summary.insert(("parameters", "\(Format.grouped(logicalParameters)) (\(Format.count(logicalParameters))), "
                + quantizedWeights.map { "\($0.1.tensors) \($0.0)" }.joined(separator: ", ") + " weights in "
                + Format.bytes(quantizedWeights.reduce(0) { $0 + $1.1.bytes })), at: 3)
            summary[summary.count - 1].1 += ", " + Format.fixed(Double(totals.bytes) * 8 / Double(max(1, logicalParameters)), 2) + " per weight parameter"
        }
        out.append(Escape.untrusted(path))
        let w = summary.map(\.0.count).max()!
        for (k, v) in summary { out.append("  " + k + String(repeating: " ", count: w - k.count + 2) + v) }

        if let summary = adapterSummary, adapter == nil || summary.family != .lora {
            out.append("")
            out.append("adapter " + summary.line)
        } else if let a = adapter {
            out.append("")
            out.append("adapter (PEFT LoRA)")
            let scaling = a.loraAlpha / (a.useRSLoRA ? Double(a.r).squareRoot() : Double(a.r))
            out.append("  r \(a.r), lora_alpha \(Format.number(a.loraAlpha)), scaling \(Format.number(scaling))"
                + (a.useRSLoRA ? " (rsLoRA)" : "") + (a.useDoRA ? ", DoRA" : ""))
            out.append(contentsOf: InspectReport.wrapped("  target modules: ", a.targetModuleNames).map(Escape.untrusted))
            if !adapterRanks.isEmpty {
                out.append("  ranks in file: " + adapterRanks.map { "r=\($0.0) x\($0.1)" }.joined(separator: ", "))
            }
            if !a.rankPattern.isEmpty {
                out.append("  rank_pattern: " + Escape.untrusted(InspectReport.patterns(a.rankPattern.map { "\(InspectReport.unescaped($0.0))=\($0.1)" })))
            }
            if !a.alphaPattern.isEmpty {
                out.append("  alpha_pattern: " + Escape.untrusted(InspectReport.patterns(a.alphaPattern.map { "\(InspectReport.unescaped($0.0))=\(Format.number($0.1))" })))
            }
        }

        out.append("")
        out.append("by dtype")
        out.append(totalsTable(firstColumn: "dtype", byDType))
        if grouping != .dtype {
            out.append("")
            out.append("by \(grouping.rawValue)")
            out.append(totalsTable(firstColumn: grouping.rawValue, groups))
        }

        if showMetadata {
            out.append("")
            out.append("metadata (\(metadata.entries.count) keys)")
            for (k, v) in metadata.entries { out.append(Escape.untrusted("  \(k) = \(InspectReport.short(v))")) }
        }

        if listTensors || tensors.contains(where: { $0.1 != nil }) {
            out.append("")
            let withStats = tensors.contains { $0.1 != nil }
            var header = ["name", "dtype", "shape", "bytes", "offset"]
            if withStats { header += ["min", "max", "mean", "std", "mean|x|", "zeros", "nan", "inf"] }
            var table = TextTable(header: header, rightAligned: Set(3..<header.count))
            for (t, s) in tensors {
                var row = [t.name, t.type.description, "[" + t.shape.map(String.init).joined(separator: ", ") + "]",
                           Format.grouped(t.byteCount), Format.grouped(t.offset)]
                if let s {
                    row += [Format.stat(s.min), Format.stat(s.max), Format.stat(s.mean), Format.stat(s.std),
                            Format.stat(s.meanAbs), Format.fixed(100 * s.zeroFraction, 2) + "%",
                            String(s.nanCount), String(s.infCount)]
                } else if withStats {
                    row += Array(repeating: "", count: 8)
                }
                table.add(row)
            }
            out.append("tensors (\(tensors.count) listed)")
            out.append(table.render())
        }
        return out.joined(separator: "\n")
    }

    private func totalsTable(firstColumn: String, _ rows: [(String, TensorTotals)]) -> String {
        var table = TextTable(header: [firstColumn, "tensors", "parameters", "bytes", "share"], rightAligned: [1, 2, 3, 4])
        for (k, t) in rows {
            let share = totals.bytes > 0 ? 100 * Double(t.bytes) / Double(totals.bytes) : 0
            table.add([k, Format.grouped(t.tensors), Format.grouped(t.parameters), Format.bytes(t.bytes), Format.fixed(share, 1) + "%"])
        }
        return table.render()
    }

    /// Pattern entries in one line: all of a few, else the first three and a count (--json has all).
    /// `prefix` then `items` separated by commas, wrapped at 100 columns with continuation lines
    /// indented under the first item.
    static func wrapped(_ prefix: String, _ items: [String]) -> [String] {
        var lines: [String] = []
        var line = prefix
        for (i, item) in items.enumerated() {
            let piece = item + (i < items.count - 1 ? "," : "")
            if line.count > prefix.count && line.count + 1 + piece.count > 100 {
                lines.append(line)
                line = String(repeating: " ", count: prefix.count)
            }
            line += (line.count > prefix.count ? " " : "") + piece
        }
        return lines + [line]
    }

    /// A rank/alpha pattern as written in configs (regex-escaped module paths, as PEFT matches them)
    /// shown as the module path it stands for: `model\.layers\.0\.q_proj` -> `model.layers.0.q_proj`.
    static func unescaped(_ pattern: String) -> String {
        var out = ""
        var escaping = false
        for c in pattern {
            if escaping || c != "\\" { out.append(c); escaping = false } else { escaping = true }
        }
        return out
    }

    static func patterns(_ entries: [String]) -> String {
        entries.count <= 4 ? entries.joined(separator: ", ")
            : entries.prefix(3).joined(separator: ", ") + ", ... (\(entries.count) entries; --json lists all)"
    }

    /// A metadata value in one short line: long arrays are summarized.
    static func short(_ v: MetadataValue) -> String {
        switch v {
        case .array(_, let items) where items.count > 8:
            let kind: String = {
                if case .string = items.first { return "strings" }
                return "values"
            }()
            return "[\(Format.grouped(items.count)) \(kind)]"
        case .string(let s) where s.count > 120:
            return JSONWriter.string(.string(String(s.prefix(117)) + "..."), style: .compact)
        default:
            return JSONWriter.string(v.json, style: .python)
        }
    }
}

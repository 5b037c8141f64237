import Foundation

extension Diff.Result {
    /// Figures over every compared tensor.
    public struct Totals: Sendable {
        public var tensorsCompared = 0
        public var changed = 0
        public var dtypeChanges = 0
        public var parametersCompared = 0
        public var sumSquaresA = 0.0
        public var sumSquaresB = 0.0
        public var dot = 0.0
        public var differenceEnergy = 0.0
        public var maxAbsDiff = 0.0
        /// Changed tensors with a rank profile.
        public var profiled = 0
        /// Profile rank -> fraction of the whole difference's energy (every compared tensor) that
        /// LoRAs of that rank on the profiled tensors capture.
        public var energyAtRank: [(rank: Int, fraction: Double)] = []
        /// The smallest profile rank capturing at least the requested energy (the largest when none does).
        public var loraRank: Int?

        public var relativeChange: Double { differenceEnergy == 0 ? 0 : (differenceEnergy / sumSquaresA).squareRoot() }
        public var cosine: Double {
            if sumSquaresA == 0 && sumSquaresB == 0 { return 1 }
            if sumSquaresA == 0 || sumSquaresB == 0 { return 0 }
            return dot / (sumSquaresA.squareRoot() * sumSquaresB.squareRoot())
        }
        public var loraFraction: Double? { loraRank.flatMap { r in energyAtRank.first { $0.rank == r }?.fraction } }
    }

    public var totals: Totals {
        var t = Totals()
        var captured: [Int: Double] = [:]
        for d in tensors {
            t.tensorsCompared += 1
            if d.isChanged { t.changed += 1 }
            if d.storageA != d.storageB { t.dtypeChanges += 1 }
            t.parametersCompared += d.shape.reduce(1, *)
            t.sumSquaresA += d.sumSquaresA
            t.sumSquaresB += d.sumSquaresB
            t.dot += d.dot
            t.differenceEnergy += d.differenceEnergy
            t.maxAbsDiff = max(t.maxAbsDiff, d.maxAbsDiff)
            if let p = d.profile {
                if d.differenceEnergy > 0 { t.profiled += 1 }
                for (r, f) in p.energyAtRank { captured[r, default: 0] += f * d.differenceEnergy }
            }
        }
        guard options.rankProfile else { return t }
        t.energyAtRank = options.ranks.sorted().map { r in (r, t.differenceEnergy > 0 ? (captured[r] ?? 0) / t.differenceEnergy : 1) }
        t.loraRank = t.energyAtRank.first { $0.fraction >= options.energy }?.rank ?? t.energyAtRank.last?.rank
        return t
    }

    /// "a LoRA of rank R captures X% of the fine-tune", with `--rank-profile`.
    public var summaryLine: String? {
        let t = totals
        guard let r = t.loraRank, let f = t.loraFraction else { return nil }
        return "a LoRA of rank \(r) captures \(Format.fixed(f * 100, 1))% of the fine-tune"
    }

    /// The `--json` object: `a`, `b`, `tensors`, `only_in_a`, `only_in_b`, `shape_changes`, `totals`.
    public var json: JSONValue {
        func num(_ v: Double) -> JSONValue { .double(v) }
        func shape(_ s: [Int]) -> JSONValue { .array(s.map { .int($0) }) }
        let t = totals
        var totalPairs: [(String, JSONValue)] = [
            ("tensors_compared", .int(t.tensorsCompared)), ("tensors_changed", .int(t.changed)),
            ("tensors_unchanged", .int(t.tensorsCompared - t.changed)), ("only_in_a", .int(onlyInA.count)),
            ("only_in_b", .int(onlyInB.count)), ("shape_changes", .int(shapeChanges.count)),
            ("dtype_changes", .int(t.dtypeChanges)), ("parameters_compared", .int(t.parametersCompared)),
            ("relative_change", num(t.relativeChange)), ("cosine", num(t.cosine)), ("max_abs_diff", num(t.maxAbsDiff)),
        ]
        if options.rankProfile {
            totalPairs += [
                ("energy", num(options.energy)), ("tensors_profiled", .int(t.profiled)),
                ("energy_at_rank", .object(t.energyAtRank.map { (String($0.rank), num($0.fraction)) })),
                ("lora_rank", t.loraRank.map { .int($0) } ?? .null), ("lora_energy", t.loraFraction.map(num) ?? .null),
                ("summary", summaryLine.map { .string($0) } ?? .null),
            ]
        }
        return .object([
            ("a", .string(pathA)), ("b", .string(pathB)),
            ("tensors", .array(tensors.map { d in
                var pairs: [(String, JSONValue)] = [
                    ("name", .string(d.name)), ("shape", shape(d.shape)), ("dtype_a", .string(d.storageA)),
                    ("dtype_b", .string(d.storageB)), ("relative_change", num(d.relativeChange)), ("cosine", num(d.cosine)),
                    ("max_abs_diff", num(d.maxAbsDiff)),
                ]
                if let p = d.profile {
                    pairs.append(("energy_at_rank", .object(p.energyAtRank.map { (String($0.rank), num($0.fraction)) })))
                    pairs.append(("rank_for_energy", .int(p.rankForEnergy)))
                }
                return .object(pairs)
            })),
            ("only_in_a", .array(onlyInA.map { .string($0) })), ("only_in_b", .array(onlyInB.map { .string($0) })),
            ("shape_changes", .array(shapeChanges.map {
                .object([("name", .string($0.name)), ("shape_a", shape($0.shapeA)), ("shape_b", shape($0.shapeB)),
                         ("dtype_a", .string($0.storageA)), ("dtype_b", .string($0.storageB))])
            })),
            ("totals", .object(totalPairs)),
        ])
    }

    /// The text report: totals, the most changed tensors (`limit` of them), tensors on one side only,
    /// shape changes, and with a rank profile the summary line.
    public func text(limit: Int = 20) -> String {
        let t = totals
        var lines = [
            "A: \(pathA)", "B: \(pathB)",
            "compared \(t.tensorsCompared) tensors (\(Format.grouped(t.parametersCompared)) parameters): \(t.changed) changed, "
                + "\(t.tensorsCompared - t.changed) identical; \(onlyInA.count) only in A, \(onlyInB.count) only in B, "
                + "\(shapeChanges.count) shape changes, \(t.dtypeChanges) dtype changes",
            "overall: relative change \(Format.stat(t.relativeChange)), cosine \(Format.fixed(t.cosine, 6)), max |B-A| \(Format.stat(t.maxAbsDiff))",
        ]
        let changed = tensors.filter(\.isChanged).sorted { rank($0.relativeChange) > rank($1.relativeChange) }
        if !changed.isEmpty {
            let ranks = options.rankProfile ? options.ranks.sorted() : []
            var header = ["tensor", "shape", "A", "B", "rel. change", "cosine", "max |B-A|"]
            header += ranks.map { "r\($0)" }
            if options.rankProfile { header.append("rank@\(Diff.Result.percent(options.energy))") }
            var table = TextTable(header: header, rightAligned: Set(4..<header.count))
            for d in changed.prefix(limit) {
                var row = [d.name, "[" + d.shape.map(String.init).joined(separator: ", ") + "]", d.storageA, d.storageB,
                           Format.stat(d.relativeChange), Format.fixed(d.cosine, 6), Format.stat(d.maxAbsDiff)]
                if options.rankProfile {
                    if let p = d.profile {
                        row += ranks.map { r in Format.fixed((p.fraction(at: r) ?? 0) * 100, 1) + "%" }
                        row.append(String(p.rankForEnergy))
                    } else {
                        row += Array(repeating: "-", count: ranks.count + 1)
                    }
                }
                table.add(row)
            }
            lines.append("")
            lines.append("most changed first" + (changed.count > limit ? " (\(limit) of \(changed.count); --json for all)" : ""))
            lines.append(table.render())
        }
        for (label, names) in [("only in A", onlyInA), ("only in B", onlyInB)] where !names.isEmpty {
            lines.append("")
            lines.append("\(label) (\(names.count))")
            lines += names.prefix(limit).map { "  " + $0 }
            if names.count > limit { lines.append("  ... (\(names.count - limit) more; --json for all)") }
        }
        if !shapeChanges.isEmpty {
            lines.append("")
            lines.append("shape changes (\(shapeChanges.count))")
            var table = TextTable(header: ["tensor", "A", "B"])
            for s in shapeChanges {
                table.add([s.name, "\(s.storageA) \(s.shapeA)", "\(s.storageB) \(s.shapeB)"])
            }
            lines.append(table.render())
        }
        if let line = summaryLine {
            lines.append("")
            lines.append("rank profile of the \(t.profiled) changed 2-D tensors: " + t.energyAtRank.map { "r\($0.rank) \(Format.fixed($0.fraction * 100, 1))%" }.joined(separator: ", "))
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    private func rank(_ v: Double) -> Double { v.isNaN ? .infinity : v }

    /// 0.9 -> "90%", 0.995 -> "99.5%".
    static func percent(_ fraction: Double) -> String {
        let p = fraction * 100
        return (p == p.rounded() ? String(Int(p)) : Format.fixed(p, 1)) + "%"
    }
}

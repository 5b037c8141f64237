/// A plain-text table with aligned columns (numbers right-aligned).
public struct TextTable {
    public var header: [String]
    public var rows: [[String]] = []
    /// Columns to right-align.
    public var rightAligned: Set<Int>

    public init(header: [String], rightAligned: Set<Int> = []) {
        self.header = header
        self.rightAligned = rightAligned
    }

    /// Adds a row. Cells are escaped (`Escape.untrusted`): names come from the files.
    public mutating func add(_ row: [String]) { rows.append(row.map(Escape.untrusted)) }

    /// The table, two spaces between columns, each line indented by `indent`.
    public func render(indent: String = "  ") -> String {
        let all = [header] + rows
        let widths = header.indices.map { c in all.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
        return all.map { row in
            let cells = header.indices.map { c -> String in
                let s = c < row.count ? row[c] : ""
                let pad = String(repeating: " ", count: widths[c] - s.count)
                return rightAligned.contains(c) ? pad + s : (c == header.count - 1 ? s : s + pad)
            }
            return indent + cells.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// Number formatting for reports.
public enum Format {
    /// 22713728 -> "22,713,728".
    public static func grouped(_ n: Int) -> String {
        let s = String(n.magnitude)
        var out = ""
        for (i, c) in s.enumerated() {
            if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    /// "1 tensor", "104 tensors", "128,512 parameters": grouped digits and a plural that agrees.
    public static func counted(_ n: Int, _ noun: String) -> String {
        grouped(n) + " " + noun + (n == 1 ? "" : "s")
    }

    /// A configuration number as people write it: 16 -> "16", 0.5 -> "0.5", 1/3 -> "0.3333".
    public static func number(_ v: Double) -> String {
        if v.isFinite && v == v.rounded() && abs(v) < 1e15 { return String(Int(v)) }
        var s = stat(v)
        if s.contains("."), !s.contains("e") { while s.hasSuffix("0") { s.removeLast() } }
        return s
    }

    /// 22713728 -> "22.7M".
    public static func count(_ n: Int) -> String {
        let d = Double(n)
        if d >= 1e9 { return fixed(d / 1e9, 2) + "B" }
        if d >= 1e6 { return fixed(d / 1e6, 1) + "M" }
        if d >= 1e3 { return fixed(d / 1e3, 1) + "K" }
        return String(n)
    }

    /// Bytes in binary units: "86.7 MiB".
    public static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : fixed(v, 1) + " " + units[u]
    }

    /// `v` with `digits` decimals.
    public static func fixed(_ v: Double, _ digits: Int) -> String {
        guard v.isFinite else { return String(v) }
        var p = 1.0
        for _ in 0..<digits { p *= 10 }
        let r = (v * p).rounded() / p
        var s = String(r)
        if s.contains("e") { return s }
        if !s.contains(".") { s += "." }
        let decimals = s.count - 1 - s.distance(from: s.startIndex, to: s.firstIndex(of: ".")!)
        if digits == 0 { return String(s.dropLast()) }
        return s + String(repeating: "0", count: max(0, digits - decimals))
    }

    /// A statistic in 4 significant digits, scientific when small or large.
    public static func stat(_ v: Double) -> String {
        if v == 0 { return "0" }
        guard v.isFinite else { return v.isNaN ? "nan" : (v < 0 ? "-inf" : "inf") }
        let a = abs(v)
        if a >= 1e-3 && a < 1e5 { return fixed(v, a >= 100 ? 2 : 4) }
        let e = Int((log10(a)).rounded(.down))
        return fixed(v / pow(10, Double(e)), 3) + "e" + String(e)
    }
}

import Foundation

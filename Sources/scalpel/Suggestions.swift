import ArgumentParser

/// Catches misspelled commands and options before argument parsing, whose own messages point
/// elsewhere (`quantise m x.gguf --type q4_0` says "Unknown option '--type'"; `--tpye` says the
/// required `--type` is missing), and suggests the nearest correct spelling.
enum Suggestions {
    /// A one-line problem with `arguments`, or nil when they name a known command and known options.
    static func check(_ arguments: [String], root: ParsableCommand.Type) -> String? {
        guard let first = arguments.first, !first.hasPrefix("-") else { return nil }
        let commands = root.configuration.subcommands
        guard let command = commands.first(where: { $0._commandName == first }) else {
            let names = commands.map { $0._commandName }
            return "unknown command '\(first)'" + hint(first, among: names, prefix: "scalpel ")
        }
        let known = optionNames(command)
        for arg in arguments.dropFirst() {
            if arg == "--" { break }
            guard arg.hasPrefix("--") else { continue }
            let name = String(arg.split(separator: "=", maxSplits: 1)[0])
            if !known.contains(name) {
                return "unknown option '\(name)' for 'scalpel \(first)'" + hint(name, among: Array(known), prefix: "")
            }
        }
        return nil
    }

    /// The long option names (`--type`, `--help`...) a command's help lists.
    static func optionNames(_ command: ParsableCommand.Type) -> Set<String> {
        let help = command.helpMessage(columns: 10_000)
        var names: Set<String> = ["--help", "--version"]
        var current = ""
        for c in help + " " {
            if c.isLetter || c.isNumber || c == "-" {
                current.append(c)
            } else {
                if current.hasPrefix("--") && current.count > 2 { names.insert(current) }
                current = ""
            }
        }
        return names
    }

    private static func hint(_ word: String, among candidates: [String], prefix: String) -> String {
        let scored = candidates.map { ($0, distance(word.lowercased(), $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(2, best.0.count / 3) else { return "" }
        return "; did you mean '\(prefix)\(best.0)'?"
    }

    /// Damerau-Levenshtein distance (adjacent transpositions count 1).
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }
}

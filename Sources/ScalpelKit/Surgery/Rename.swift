import Foundation

/// The `rename` command's transform: new tensor names from a JSON map or a regular expression, every
/// tensor copied unchanged.
public enum Rename {
    /// How names change.
    public enum Rule: Sendable {
        /// Old name -> new name; tensors not listed keep their names. Every key must name a tensor.
        case map([(String, String)])
        /// Every match of `pattern` (NSRegularExpression syntax) in a name is replaced by `template`
        /// (`$1` ... for groups).
        case regex(pattern: String, template: String)
    }

    /// Reads a `--map` file: one JSON object of old name -> new name (strings).
    public static func loadMap(_ path: String) throws -> Rule {
        let text = try readSmallFile(path)
        guard let json = try? JSONParser.parse(text), case .object(let pairs) = json else {
            throw ScalpelError.malformed(file: path, tensor: nil, reason: "--map must be a JSON object of old name -> new name")
        }
        return .map(try pairs.map { key, value in
            guard let s = value.stringValue, !s.isEmpty else {
                throw ScalpelError.malformed(file: path, tensor: key, reason: "the new name must be a non-empty string")
            }
            return (key, s)
        })
    }

    /// The new name of every tensor, in order (unchanged names included).
    /// - Throws: `ScalpelError.invalid` for a map key naming no tensor, an invalid regular expression, an
    ///   empty new name, or two tensors that would share a name (naming both).
    public static func names(_ names: [String], rule: Rule, file: String) throws -> [String] {
        var out: [String]
        switch rule {
        case .map(let pairs):
            var map: [String: String] = [:]
            let present = Set(names)
            for (old, new) in pairs {
                guard present.contains(old) else { throw ScalpelError.invalid(file: file, tensor: old, reason: "--map names a tensor that is not in the file") }
                guard map[old] == nil else { throw ScalpelError.invalid(file: file, tensor: old, reason: "--map lists this tensor twice") }
                map[old] = new
            }
            out = names.map { map[$0] ?? $0 }
        case .regex(let pattern, let template):
            let re: NSRegularExpression
            do { re = try NSRegularExpression(pattern: pattern) } catch {
                throw ScalpelError.invalid(file: nil, tensor: nil, reason: "--regex: \(pattern.debugDescription) is not a valid regular expression")
            }
            out = names.map { re.stringByReplacingMatches(in: $0, range: NSRange($0.startIndex..., in: $0), withTemplate: template) }
        }
        var owner: [String: String] = [:]
        for (old, new) in zip(names, out) {
            guard !new.isEmpty else { throw ScalpelError.invalid(file: file, tensor: old, reason: "would be renamed to an empty name") }
            if let other = owner[new] {
                let reason = old == new ? "keeps its name, which \"\(other)\" would be renamed to"
                    : other == new ? "would be renamed to \"\(new)\", a tensor that keeps its name"
                    : "would be renamed to \"\(new)\", as would \"\(other)\""
                throw ScalpelError.invalid(file: file, tensor: old, reason: "name collision: " + reason)
            }
            owner[new] = old
        }
        return out
    }

    /// The renamed checkpoint as a plan: every tensor a view of the input under its new name, the
    /// metadata (GGUF to GGUF as it is, else as `convert` writes it), and a report listing the mapping
    /// (`renamed`, `mapping` in JSON).
    public static func plan(_ input: Checkpoint, for destination: Destination, rule: Rule) throws -> Plan {
        let old = input.tensors.map(\.name)
        let new = try names(old, rule: rule, file: input.path)
        var tensors: [OutputTensor] = []
        for (i, name) in new.enumerated() {
            tensors.append(OutputTensor(copying: try input.view(at: i), name: name, onWritten: { input.release(old[i]) }))
        }
        let toGGUF = destination.kind == .gguf
        let metadata = toGGUF && input.format == .gguf ? input.metadata
            : Convert.metadata(input, toGGUF: toGGUF, outputs: tensors, options: .init())
        var plan = Plan(destination: destination, tensors: tensors, metadata: metadata, ggufAlignment: input.alignment ?? 32,
                        inputs: [input.path])
        let changes = zip(old, new).filter { $0 != $1 }
        let text = mappingText(changes, total: old.count, verb: "renamed")
        let fields: [(String, JSONValue)] = [("tensors", .int(old.count)), ("renamed", .int(changes.count)),
                                             ("mapping", .object(changes.map { ($0.0, .string($0.1)) }))]
        plan.report = { _ in Report(text: text, fields: fields) }
        return plan
    }

    /// "VERB N of M tensors" and a from/to table of the changed names.
    public static func mappingText(_ changes: [(String, String)], total: Int, verb: String) -> String {
        var table = TextTable(header: ["from", "to"])
        for (a, b) in changes { table.add([a, b]) }
        return "\(verb) \(changes.count) of \(total) tensors" + (changes.isEmpty ? "" : "\n" + table.render())
    }
}

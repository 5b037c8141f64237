import ScalpelKit

/// `--dry-run` output: each tensor with what happens to it, its output type and bytes, then the files
/// and their exact sizes.
enum PlanText {
    static func render(_ plan: Plan, files: [PlannedFile]) -> String {
        var table = TextTable(header: ["tensor", "action", "type", "shape", "bytes"], rightAligned: [4])
        for t in plan.tensors {
            table.add([Terminal.escaped(t.name), t.action, t.type.description, shapeText(t.shape), Format.grouped(t.byteCount)])
        }
        let total = files.reduce(0) { $0 + $1.bytes }
        var lines = ["plan for \(plan.destination.path): \(Format.counted(plan.tensors.count, "tensor"))", table.render(), ""]
        for f in files {
            lines.append("  \(f.path)  \(Format.grouped(f.bytes)) bytes" + (f.compressed ? " before zstd compression" : ""))
        }
        lines.append("would write \(Format.grouped(total)) bytes (\(Format.bytes(total))) in \(Format.counted(files.count, "file")); nothing written (--dry-run)")
        return lines.joined(separator: "\n")
    }

    static func json(_ plan: Plan, files: [PlannedFile], command: String) -> JSONValue {
        .object([
            ("command", .string(command)), ("output", .string(plan.destination.path)), ("dry_run", .bool(true)),
            ("predicted_bytes", .int(files.reduce(0) { $0 + $1.bytes })),
            ("files", .array(files.map {
                .object([("path", .string($0.path)), ("bytes", .int($0.bytes)), ("tensors", .int($0.tensors)), ("compressed", .bool($0.compressed))])
            })),
            ("plan", .array(plan.tensors.map {
                .object([("name", .string($0.name)), ("action", .string($0.action)), ("type", .string($0.type.description)),
                         ("shape", .array($0.shape.map { .int($0) })), ("bytes", .int($0.byteCount))])
            })),
            ("warnings", .array(plan.warnings.map { .string($0) })),
        ])
    }

    static func shapeText(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ", ") + "]"
    }
}

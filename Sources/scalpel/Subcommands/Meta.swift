import ArgumentParser
import ScalpelKit

extension Scalpel {
    struct Meta: ScalpelCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, read and edit the metadata of a safetensors or GGUF file.",
            discussion: """
            Without edits, lists every key with its type and value (--get KEY prints one value). Edits: --set \
            KEY=VALUE, --set-from-file KEY=FILE (a chat template...), --delete KEY, all repeatable; --type \
            KEY=TYPE gives the GGUF type of a key being set: u8 u16 u32 u64 i8 i16 i32 i64 f32 f64 bool string, \
            or array[T] with a JSON array value. Without --type a key keeps its type, and a new key's type is \
            inferred (true/false bool, integers i32, decimals f32, JSON arrays array[...], else string). \
            safetensors __metadata__ holds strings only.

            -o OUT writes a new file (a streamed copy). --in-place rewrites only the header, and only when the \
            new header takes exactly the room of the old one (safetensors: its JSON fits the old length and is \
            padded with spaces; GGUF: the tensor data does not move); otherwise it refuses, says why, and \
            leaves the file untouched.

            Examples:
              scalpel meta model.gguf
              scalpel meta model.gguf --get tokenizer.chat_template
              scalpel meta model.gguf -o fixed.gguf --set-from-file tokenizer.chat_template=template.jinja
              scalpel meta model.gguf -o out.gguf --set my.ids='[1, 2, 3]' --type my.ids='array[i32]'
              scalpel meta model.safetensors --in-place --set format=pt --delete note
            """
        )

        @Argument(help: "A .safetensors or .gguf file.")
        var path: String

        @Option(name: .shortAndLong, help: "Write the edited file here (same format).")
        var output: String?

        @Flag(help: "Edit the file itself, when the header keeps its size.")
        var inPlace = false

        @Option(help: "Print the value of KEY.")
        var get: String?

        @Option(help: "KEY=VALUE to set (repeatable).")
        var set: [String] = []

        @Option(help: "KEY=TYPE: the type of a key being set (repeatable).")
        var type: [String] = []

        @Option(help: "KEY to delete (repeatable).")
        var delete: [String] = []

        @Option(help: "KEY=FILE: set KEY to the text of FILE (repeatable).")
        var setFromFile: [String] = []

        @OptionGroup var writing: WriteOptions
        @OptionGroup var global: GlobalOptions

        private var json: Bool { writing.json }

        func validate() throws {
            for s in set + setFromFile where MetadataEdit.split(s) == nil { throw ValidationError("expected KEY=VALUE, not '\(s)'") }
            for t in type {
                guard let (_, name) = MetadataEdit.split(t), MetadataType(name) != nil else {
                    throw ValidationError("--type takes KEY=TYPE with TYPE one of u8..u64, i8..i64, f32, f64, bool, string, array[T]; not '\(t)'")
                }
            }
            let editing = !set.isEmpty || !setFromFile.isEmpty || !delete.isEmpty
            if editing && output == nil && !inPlace { throw ValidationError("edits need -o OUT or --in-place") }
            if !editing && (output != nil || inPlace) { throw ValidationError("-o and --in-place need an edit (--set, --set-from-file, --delete)") }
            if output != nil && inPlace { throw ValidationError("use either -o OUT or --in-place") }
            if get != nil && editing { throw ValidationError("--get reads; it does not combine with edits") }
        }

        func execute() throws {
            let ckpt = try CheckpointReader.open(path, headerOnly: output == nil)
            if let key = get {
                guard let v = ckpt.metadata[key] else { throw ScalpelError.invalid(file: path, tensor: nil, reason: "no metadata key \"\(key)\"") }
                print(json ? JSONWriter.string(.object([("key", .string(key)), ("type", .string(MetadataType(of: v).description)), ("value", v.json)]), style: .pretty)
                           : MetadataListing.value(v))
                return
            }
            var edit = MetadataEdit()
            edit.sets = set.compactMap(MetadataEdit.split).map { (key: $0.0, value: $0.1) }
            edit.setsFromFile = setFromFile.compactMap(MetadataEdit.split).map { (key: $0.0, file: $0.1) }
            edit.types = type.compactMap(MetadataEdit.split).map { (key: $0.0, type: MetadataType($0.1)!) }
            edit.deletes = delete
            guard !edit.isEmpty else {
                print(json ? JSONWriter.string(MetadataListing.json(ckpt.metadata, path: path, format: ckpt.format), style: .pretty)
                           : MetadataListing.text(ckpt.metadata, path: path, format: ckpt.format))
                return
            }
            let metadata = try edit.apply(to: ckpt.metadata, format: ckpt.format, file: path)
            if let output {
                try writing.carryOut(try MetadataEdit.plan(ckpt, metadata: metadata, to: try Destination(path: output)),
                                     command: Self._commandName, global: global)
            } else {
                guard !writing.dryRun else {
                    print("dry run: \(path) would be edited in place (\(metadata.entries.count) metadata keys); nothing written")
                    return
                }
                let n = try MetadataEdit.writeInPlace(ckpt, metadata: metadata)
                print("edited \(path) in place: \(metadata.entries.count) metadata keys (was \(ckpt.metadata.entries.count)), \(n) header bytes rewritten")
            }
        }
    }
}

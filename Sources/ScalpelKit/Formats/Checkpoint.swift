/// A checkpoint opened for reading: its tensor descriptions from the header, and lazy zero-copy access to
/// each tensor's bytes.
///
/// Opening reads only headers. `view(_:)` touches the mapped pages of one tensor; `release(_:)` lets the
/// kernel drop them again, so that a pass over all tensors keeps resident memory near the largest tensor.
public final class Checkpoint: Sendable {
    /// Where a tensor's bytes live.
    struct Location {
        /// Index into `files`.
        var file: Int
        /// Absolute byte offset in that file.
        var start: Int
    }

    /// The path the user named.
    public let path: String
    /// The container format (of the decompressed content for `.zst` inputs).
    public let format: CheckpointFormat
    /// True when the input was zstd-compressed.
    public let compressed: Bool
    /// Tensors in file order (shard by shard for sharded checkpoints).
    public let tensors: [TensorInfo]
    /// Format metadata: safetensors `__metadata__` (strings) or GGUF key/values.
    public let metadata: Metadata
    /// Total bytes of the files on disk (compressed size for `.zst`).
    public let fileBytes: Int
    /// For a PEFT adapter folder: the parsed `adapter_config.json`.
    public let adapterConfig: JSONValue?
    /// The GGUF tensor data alignment, when the format is GGUF.
    public let alignment: Int?
    /// The mapped files (one per shard).
    let files: [MappedFile]
    let locations: [Location]
    private let index: [String: Int]

    init(path: String, format: CheckpointFormat, compressed: Bool = false, tensors: [TensorInfo],
         locations: [Location], files: [MappedFile], metadata: Metadata, fileBytes: Int,
         adapterConfig: JSONValue? = nil, alignment: Int? = nil) {
        self.path = path
        self.format = format
        self.compressed = compressed
        self.tensors = tensors
        self.locations = locations
        self.files = files
        self.metadata = metadata
        self.fileBytes = fileBytes
        self.adapterConfig = adapterConfig
        self.alignment = alignment
        var idx: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { idx[t.name] = i }
        self.index = idx
        OpenedInputs.register(self)
    }

    /// The position of the tensor named `name` in `tensors`, if present.
    public func index(of name: String) -> Int? { index[name] }

    /// The description of the tensor named `name`, if present.
    public func info(named name: String) -> TensorInfo? {
        index[name].map { tensors[$0] }
    }

    /// Zero-copy bytes of the tensor named `name`.
    /// - Throws: `ScalpelError.invalid` when there is no such tensor.
    public func view(_ name: String) throws -> TensorView {
        guard let i = index[name] else {
            throw ScalpelError.invalid(file: path, tensor: name, reason: "no such tensor")
        }
        return try view(at: i)
    }

    /// Zero-copy bytes of the `i`-th tensor.
    /// - Throws: `ScalpelError.invalid` when the checkpoint was opened header-only.
    public func view(at i: Int) throws -> TensorView {
        guard !files.isEmpty else {
            throw ScalpelError.invalid(file: path, tensor: tensors[i].name, reason: "opened header-only; tensor data is not available")
        }
        let loc = locations[i]
        let f = files[loc.file]
        let info = tensors[i]
        let bytes = UnsafeRawBufferPointer(rebasing: f.bytes[loc.start..<(loc.start + info.byteCount)])
        return TensorView(info: info, bytes: bytes, owner: f)
    }

    /// Lets the kernel drop the pages of `bytes` (offsets within the data of tensor `i`; they can be
    /// read again later).
    public func release(at i: Int, bytes: Range<Int>) {
        guard !files.isEmpty else { return }
        let start = locations[i].start
        files[locations[i].file].release((start + bytes.lowerBound)..<(start + bytes.upperBound))
    }

    /// Lets the kernel drop the pages of the tensor named `name` (it can be read again later).
    public func release(_ name: String) {
        guard let i = index[name], !files.isEmpty else { return }
        let loc = locations[i]
        files[loc.file].release(loc.start..<(loc.start + tensors[i].byteCount))
    }

    /// The path the user named and every file it resolved to (shards, adapter weights), for the rule that
    /// no output may overwrite an input.
    public var sourcePaths: [String] { [path] + files.map(\.path) }

    /// Total bytes of tensor data (the readers check that this sum does not overflow).
    public var dataBytes: Int { tensors.reduce(0) { $0 + $1.byteCount } }

    /// Total elements over all tensors (Int.max if a crafted header's count overflows).
    public var parameterCount: Int {
        tensors.reduce(0) { sum, t in
            let (s, o) = sum.addingReportingOverflow(t.elementCount)
            return o ? Int.max : s
        }
    }
}
